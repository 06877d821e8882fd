"""The upload gateway's HTTP API (FastAPI; OpenAPI at /openapi.json, docs at /docs).

Upload systems register a source URI (`POST /v1/videos`) or send the bytes (`POST /v1/videos/upload`,
stored in the object store as they stream), and ask where an upload is (`GET /v1/uploads/{event_id}`,
`GET /v1/videos/{id}/status`) from the status the pipeline publishes. The API key decides the tenant (as
in search), never the body; the video id derives from tenant + source.
"""

import hashlib
import logging
import uuid
from collections import OrderedDict
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from services.common.errors import ClipstreamError, PermanentError, TransientError
from services.common.http import ApiKeys, KeyGuard
from services.common.kafka.publisher import Publisher
from services.common.messages import (
    MAX_TAGS,
    Creator,
    Metadata,
    MetadataPatch,
    Tag,
    Title,
    Topics,
    Uri,
    VideoDeleted,
    VideoStatus,
    VideoUpdated,
    VideoUploaded,
)
from services.common.telemetry import export_readiness
from services.gateway.registration import video_id_for
from services.gateway.settings import GatewaySettings
from services.gateway.status_view import StatusView
from services.gateway.uploads import ObjectStore, TooLarge, safe_name
from services.media.errors import DecodeError
from services.media.settings import MediaSettings
from services.media.sources import admit

log = logging.getLogger(__name__)
REGISTRATIONS = Counter("clipstream_gateway_registrations_total", "registrations", ["kind", "outcome"])
IDEMPOTENCY_KEY = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uri: Uri = Field(description="file://, http(s):// or s3:// source the decoder is allowed to read")
    title: Title = ""
    creator: Creator = ""
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    metadata: Metadata = Field(
        default_factory=dict, description="free key/values (identifier keys; string, number or boolean values)"
    )


class VideoPatch(BaseModel):
    """Fields to correct; the others stay as they are."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    creator: Creator | None = None
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    metadata: MetadataPatch | None = Field(
        default=None, description="merged into the video's free metadata (JSON merge patch: null removes a key)"
    )


class Accepted(BaseModel):
    event_id: str
    video_id: str
    status_url: str


class Registered(BaseModel):
    event_id: str
    video_id: str
    uri: str
    status_url: str
    replayed: bool = Field(default=False, description="an earlier request with this Idempotency-Key registered it")


class Status(BaseModel):
    event_id: str
    video_id: str
    stage: str
    reason: str = ""
    detail: str = ""
    segment_count: int = 0
    segments_indexed: int = 0
    superseded_by: str | None = Field(default=None, description="a newer upload of the same video")
    updated_at: str


def create_app(
    settings: GatewaySettings,
    publisher: Publisher | None = None,
    view: StatusView | None = None,
    store: ObjectStore | None = None,
) -> FastAPI:
    keys = dict(settings.api_keys) or {settings.common.local_api_key(): "default"}
    policy = MediaSettings().source_policy()
    # JSON bodies are small: 64 KiB for every route, the upload route alone takes up to max_upload_bytes
    app = FastAPI(title="clipstream gateway", version="1", description=__doc__, max_body_size=64 * 1024)
    app.add_middleware(KeyGuard, keys=ApiKeys(keys))
    if settings.cors_origins:  # added last = outermost: answers a browser's preflight, which carries no key
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key"],
            max_age=600,
        )
    api_keys = ApiKeys(keys)
    parts: dict[str, Any] = {"publisher": publisher, "view": view, "store": store}
    seen: OrderedDict[str, Registered] = OrderedDict()  # Idempotency-Key answers of this replica

    def part(name: str) -> Any:
        if parts[name] is None:
            parts[name] = {
                "publisher": lambda: Publisher(settings.common, "gateway"),
                "view": lambda: StatusView(settings.common).start(),
                "store": lambda: ObjectStore(settings),
            }[name]()
        return parts[name]

    def tenant_of(
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> str:
        tenant = api_keys.tenant(authorization, x_api_key)
        if tenant is None:  # KeyGuard answered already; kept for direct calls of the route functions
            raise HTTPException(401, "missing or unknown API key")
        return tenant

    Tenant = Annotated[str, Depends(tenant_of)]

    @app.exception_handler(ClipstreamError)
    async def clipstream_error(_request: Request, exc: ClipstreamError) -> JSONResponse:
        if isinstance(exc, TooLarge):
            status = 413
        elif isinstance(exc, TransientError):
            status = 503
        else:
            status = 422
        headers = {"Retry-After": "5"} if status == 503 else None
        return JSONResponse({"detail": exc.detail, "reason": exc.reason}, status_code=status, headers=headers)

    def register(tenant: str, body: Registration, idempotency_key: str | None, kind: str) -> Registered:
        event_id = (
            "i" + hashlib.sha256(f"{tenant}\n{idempotency_key}".encode()).hexdigest()[:40]
            if idempotency_key
            else uuid.uuid4().hex
        )
        if idempotency_key:
            earlier = seen.get(event_id) or _from_view(part("view").upload(event_id), event_id)
            if earlier is not None:
                REGISTRATIONS.labels(kind, "replayed").inc()
                return earlier.model_copy(update={"replayed": True})
        try:
            admit(body.uri, policy)
        except DecodeError as exc:
            REGISTRATIONS.labels(kind, exc.reason).inc()
            raise PermanentError(exc.detail, reason=exc.reason) from exc
        upload = VideoUploaded(
            event_id=event_id,
            video_id=video_id_for(tenant, body.uri),
            uri=body.uri,
            creator=body.creator,
            tenant=tenant,
            title=body.title,
            tags=body.tags,
            metadata=body.metadata,
        )
        publisher_ = part("publisher")
        publisher_.publish(Topics.UPLOADED, upload)
        try:
            publisher_.flush(settings.common.kafka_call_timeout_s)
        except Exception as exc:
            raise TransientError(f"Kafka did not take the registration: {exc}", reason="kafka_unavailable") from exc
        answer = Registered(
            event_id=event_id, video_id=upload.video_id, uri=upload.uri, status_url=f"/v1/uploads/{event_id}"
        )
        if idempotency_key:
            seen[event_id] = answer
            while len(seen) > settings.idempotency_cache:
                seen.popitem(last=False)
        REGISTRATIONS.labels(kind, "registered").inc()
        return answer

    def _from_view(status: VideoStatus | None, event_id: str) -> Registered | None:
        if status is None:
            return None
        return Registered(event_id=event_id, video_id=status.video_id, uri="", status_url=f"/v1/uploads/{event_id}")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    export_readiness("gateway", lambda: part("view").ready())

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> PlainTextResponse:
        ready = part("view").ready()
        return PlainTextResponse("ready" if ready else "status view not caught up", status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/videos", status_code=202, response_model=Registered)
    def register_uri(body: Registration, tenant: Tenant, idempotency_key: IDEMPOTENCY_KEY = None) -> Registered:
        return register(tenant, body, idempotency_key, "uri")

    @app.post("/v1/videos/upload", status_code=202, response_model=Registered, max_body_size=settings.max_upload_bytes)
    async def upload(
        request: Request,
        tenant: Tenant,
        filename: Annotated[str, Query(min_length=1, max_length=255)],
        title: Annotated[str, Query(max_length=1024)] = "",
        creator: Annotated[str, Query(max_length=256)] = "",
        tags: Annotated[list[str] | None, Query(max_length=MAX_TAGS)] = None,
        metadata: Annotated[str, Query(max_length=8192, description="free metadata as a JSON object")] = "{}",
        idempotency_key: IDEMPOTENCY_KEY = None,
    ) -> Registered:
        """The request body is the video's bytes (any Content-Type), streamed into the object store."""
        try:  # checked before a byte is stored
            free = TypeAdapter(Metadata).validate_json(metadata)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False)
            raise RequestValidationError([e | {"loc": ("query", "metadata", *e["loc"])} for e in errors]) from exc
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes:
            raise TooLarge(f"Content-Length {declared} is over {settings.max_upload_bytes} bytes")
        content_type = request.headers.get("content-type", "application/octet-stream")[:200]
        stored = await part("store").store(tenant, filename, request.stream(), content_type)
        body = Registration(
            uri=stored.uri, title=title or safe_name(filename), creator=creator, tags=tags or [], metadata=free
        )
        return await run_in_threadpool(register, tenant, body, idempotency_key, "upload")

    def status_of(status: VideoStatus | None, tenant: str, event_id: str | None = None) -> Status:
        if status is None or status.tenant != tenant:
            raise HTTPException(404, "no such upload for this tenant")
        superseded = event_id is not None and status.event_id != event_id and status.stage != "deleted"
        return Status(
            event_id=event_id or status.event_id,
            video_id=status.video_id,
            stage="superseded" if superseded else status.stage,
            reason=status.reason,
            detail=status.detail,
            segment_count=status.segment_count,
            segments_indexed=status.segments_indexed,
            superseded_by=status.event_id if superseded else None,
            updated_at=status.updated_at.isoformat(),
        )

    @app.get("/v1/uploads/{event_id}", response_model=Status)
    def upload_status(event_id: Annotated[str, PathParam(max_length=64)], tenant: Tenant) -> Status:
        return status_of(part("view").upload(event_id), tenant, event_id)

    @app.get("/v1/videos/{video_id}/status", response_model=Status)
    def video_status(video_id: Annotated[str, PathParam(max_length=128)], tenant: Tenant) -> Status:
        return status_of(part("view").video(video_id), tenant)

    def owned(video_id: str, tenant: str) -> VideoStatus:
        status = part("view").video(video_id)
        if status is None or status.tenant != tenant:
            raise HTTPException(404, "no such video for this tenant")
        return status

    def publish(topic: str, message: VideoDeleted | VideoUpdated) -> None:
        publisher_ = part("publisher")
        publisher_.publish(topic, message)
        try:
            publisher_.flush(settings.common.kafka_call_timeout_s)
        except Exception as exc:
            raise TransientError(f"Kafka did not take the request: {exc}", reason="kafka_unavailable") from exc

    @app.delete("/v1/videos/{video_id}", status_code=202, response_model=Accepted)
    def delete_video(video_id: Annotated[str, PathParam(max_length=128)], tenant: Tenant) -> Accepted:
        """Remove the video from every collection (a takedown); late messages of it cannot bring it back."""
        owned(video_id, tenant)
        deleted = VideoDeleted(video_id=video_id, tenant=tenant)
        publish(Topics.DELETED, deleted)
        return Accepted(event_id=deleted.event_id, video_id=video_id, status_url=f"/v1/videos/{video_id}/status")

    @app.patch("/v1/videos/{video_id}", status_code=202, response_model=Accepted)
    def patch_video(video_id: Annotated[str, PathParam(max_length=128)], body: VideoPatch, tenant: Tenant) -> Accepted:
        """Correct title, creator, tags or free metadata in the index, without decoding or embedding again."""
        given = {k: v for k, v in body.model_dump().items() if v is not None}  # a null *inside* metadata stays
        if not given:
            raise HTTPException(422, "nothing to change: give title, creator, tags or metadata")
        if owned(video_id, tenant).stage == "deleted":
            raise HTTPException(409, "the video was deleted")
        updated = VideoUpdated(video_id=video_id, tenant=tenant, **given)
        publish(Topics.UPDATED, updated)
        return Accepted(event_id=updated.event_id, video_id=video_id, status_url=f"/v1/videos/{video_id}/status")

    return app
