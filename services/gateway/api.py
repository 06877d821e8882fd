"""The upload gateway's HTTP API (FastAPI; OpenAPI at /openapi.json, docs at /docs).

Upload systems register a source URI (`POST /v1/videos`, or up to 100 at once with `POST /v1/videos/batch`),
send the bytes (`POST /v1/videos/upload`, stored in the object store as they stream; or straight to the store
in resumable multipart parts, `/v1/uploads/multipart`), ask where uploads are (`GET /v1/uploads/{event_id}`,
`GET /v1/videos/{id}/status`, listings `GET /v1/videos`, `GET /v1/uploads?stage=failed`), take videos down or
correct them (`DELETE`/`PATCH /v1/videos/{id}`) and subscribe to outcomes (`/v1/webhooks`). The API key
decides the tenant, never the body; the video id derives from tenant + source. A 202 means the registration
is in Kafka and will reach an outcome.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from services.common.http import ApiKeys, KeyGuard, install_error_handlers, ops_router
from services.common.kafka.publisher import Publisher
from services.common.webhooks import EndpointRegistry
from services.gateway.deps import Parts
from services.gateway.object_store import ObjectStore
from services.gateway.routes import lifecycle, multipart, registration, status, webhooks
from services.gateway.routes.uploads import uploads_router
from services.gateway.settings import GatewaySettings
from services.gateway.status_view import StatusView
from services.intake.idempotency import IdempotencyLedger
from services.intake.registrar import Registrar


def create_app(
    settings: GatewaySettings,
    publisher: Publisher | None = None,
    view: StatusView | None = None,
    store: ObjectStore | None = None,
) -> FastAPI:
    keys = dict(settings.api_keys) or {settings.common.local_api_key(): "default"}
    # JSON bodies are small: 64 KiB for every route, the upload route alone takes up to max_upload_bytes
    app = FastAPI(title="clipstream gateway", version="1", description=__doc__, max_body_size=64 * 1024)
    app.state.api_keys = ApiKeys(keys)
    app.add_middleware(KeyGuard, keys=app.state.api_keys)
    if settings.cors_origins:  # added last = outermost: answers a browser's preflight, which carries no key
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "PUT"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key"],
            expose_headers=["ETag", "Retry-After"],
            max_age=600,
        )
    install_error_handlers(app)
    parts = Parts(settings, publisher=publisher, view=view, store=store)
    policy = settings.media.source_policy()
    parts.provide("publisher", lambda: Publisher(settings.common, "gateway"))
    parts.provide("view", lambda: StatusView(settings.common).start())
    parts.provide("ledger", lambda: IdempotencyLedger(settings.common, "gateway").start())
    parts.provide("registrar", lambda: Registrar(settings.common, policy, parts.publisher, parts.get("ledger")))
    parts.provide("store", lambda: ObjectStore(settings))
    parts.provide("webhooks", lambda: EndpointRegistry(settings.common, settings.webhooks).start())
    app.state.parts = parts

    def problems() -> list[str]:
        checks = (
            ("status view", parts.get("view").ready()),
            ("registrations", parts.get("ledger").ready()),
            ("webhook endpoints", parts.get("webhooks").table.ready()),
        )
        return [name for name, ok in checks if not ok]

    app.include_router(ops_router("gateway", problems))
    app.include_router(registration.router)
    app.include_router(uploads_router(settings.max_upload_bytes))
    app.include_router(status.router)
    app.include_router(lifecycle.router)
    app.include_router(webhooks.router)
    app.include_router(multipart.router)
    return app
