"""The search service's HTTP API (FastAPI; OpenAPI at /openapi.json, docs at /docs) and web page.

Every request under `/v1/` carries an API key (`Authorization: Bearer KEY` or `X-API-Key: KEY`); the key decides
the tenant, and the tenant is forced into every filter, so a tenant only ever sees its own videos. Outside
`/v1/`: the page, its `/config`, `/login` (a one-time token from `clipstream login` for the tenant's key) and
signed `/media/` links.
"""

import logging

from fastapi import FastAPI

from services.common.http import ApiKeys, KeyGuard, install_error_handlers, ops_router
from services.common.kafka.publisher import Publisher
from services.intake.registrar import Registrar
from services.search.curation_jobs import CurationRuns
from services.search.deps import Once
from services.search.engine import SearchEngine
from services.search.login import LoginBook, LoginDesk, login_folder
from services.search.playback import Links
from services.search.routes import cache, curation, login, page, playback, qc, recommend, search, videos
from services.search.settings import SearchSettings

log = logging.getLogger(__name__)


def create_app(settings: SearchSettings, engine: SearchEngine | None = None) -> FastAPI:
    configured = dict(settings.api_keys)
    if not configured:
        path = settings.common.home / "search-api-key"
        configured[settings.common.local_api_key()] = "default"
        log.warning("no API keys configured: using the generated key for tenant 'default'", extra={"path": str(path)})
    # the key and the body size are checked before FastAPI reads (and spools) a multipart body; the
    # form's other fields add a little to the file's bytes
    app = FastAPI(
        title="clipstream search",
        version="1",
        description=__doc__,
        max_body_size=settings.max_upload_bytes + 64 * 1024,
    )
    app.state.api_keys = ApiKeys(configured)
    app.add_middleware(KeyGuard, keys=app.state.api_keys)
    install_error_handlers(app)

    engines = Once(lambda: engine or SearchEngine(settings))
    app.state.settings = settings
    app.state.engine = engines
    app.state.curation_runs = Once(lambda: CurationRuns(engines.get().store, settings.common.home))
    policy = settings.media.source_policy()
    app.state.registrar = Once(lambda: Registrar(settings.common, policy, Publisher(settings.common, "search")))
    secret = settings.media_secret.get_secret_value() if settings.media_secret else None
    app.state.links = Links.from_keys(configured, secret, settings.media_url_ttl_s)
    app.state.media_policy = settings.media.source_policy()
    app.state.logins = LoginDesk(LoginBook(login_folder(settings.common.home)), configured)

    def problems() -> list[str]:
        found = engines.get()
        return [name for name, ok in (("triton", found.clip.ready()), ("milvus", found.store.ready())) if not ok]

    app.include_router(ops_router("search", problems))
    for routes in (page, login, search, videos, cache, recommend, qc, curation, playback):
        app.include_router(routes.router)
    return app
