"""Uploads through the gateway: the bytes are streamed into the object store, then registered.

Everything a request says is validated before its first byte is stored; a keyed retry replays its answer
without storing the bytes again (a keyed upload's object derives from its event id); an object whose
registration certainly failed is deleted again. The body is the video's bytes (`application/octet-stream`,
`video/*`), or a `multipart/form-data` form with one `file` field (and optionally the other parameters as
form fields), as a browser's form sends; any other content type is 415.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import UploadFile  # what request.form() gives (FastAPI's is a subclass)

from services.common.errors import PermanentError, TooLarge, UnsupportedMediaType
from services.common.http import Tenant
from services.common.kafka.publisher import NotDelivered
from services.common.messages import MAX_TAGS, Metadata
from services.gateway.deps import GatewayParts
from services.gateway.object_store import safe_name
from services.gateway.routes.registration import IdempotencyKey, register
from services.intake.models import Registered, Registration
from services.intake.registration import event_id_for

BYTES_TYPES = ("application/octet-stream", "application/mp4", "video/")
FORM_FIELDS = ("filename", "title", "creator", "metadata")
CHUNK = 1024 * 1024


def _invalid(exc: ValidationError, where: str) -> RequestValidationError:
    errors = exc.errors(include_url=False, include_context=False)
    return RequestValidationError([e | {"loc": (where, *e["loc"])} for e in errors])


def _registration(uri: str, filename: str, fields: dict[str, Any]) -> Registration:
    """Every parameter checked at once (before a byte is stored), as a 422 naming each bad one."""
    try:
        metadata = TypeAdapter(Metadata).validate_json(fields.get("metadata") or "{}")
    except ValidationError as exc:
        raise _invalid(exc, "metadata") from exc
    try:
        return Registration(
            uri=uri,
            title=fields.get("title") or safe_name(filename),
            creator=fields.get("creator") or "",
            tags=fields.get("tags") or [],
            metadata=metadata,
        )
    except ValidationError as exc:
        raise _invalid(exc, "query") from exc


async def _chunks(file: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await file.read(CHUNK):
        yield chunk


def uploads_router(max_upload_bytes: int) -> APIRouter:
    router = APIRouter(tags=["uploads"])

    @router.post("/v1/videos/upload", status_code=202, response_model=Registered, max_body_size=max_upload_bytes)
    async def upload(
        request: Request,
        tenant: Tenant,
        parts: GatewayParts,
        filename: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
        title: Annotated[str, Query(max_length=4096)] = "",
        creator: Annotated[str, Query(max_length=1024)] = "",
        tags: Annotated[list[str] | None, Query(max_length=MAX_TAGS)] = None,
        metadata: Annotated[str, Query(max_length=8192, description="free metadata as a JSON object")] = "{}",
        idempotency_key: IdempotencyKey = None,
    ) -> Registered:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_upload_bytes:
            raise TooLarge(f"Content-Length {declared} is over {max_upload_bytes} bytes")
        content_type = request.headers.get("content-type", "application/octet-stream")[:200]
        fields: dict[str, Any] = {"filename": filename, "title": title, "creator": creator, "tags": tags}
        fields["metadata"] = metadata
        body: AsyncIterator[bytes]
        if content_type.startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=2 * MAX_TAGS, max_part_size=64 * 1024)
            file = form.get("file")
            if not isinstance(file, UploadFile):
                raise PermanentError("a multipart upload needs one file field named 'file'", reason="no_file")
            for name in FORM_FIELDS:
                given = form.get(name)
                if isinstance(given, str) and given:
                    fields[name] = given
            fields["tags"] = [t for t in form.getlist("tags") if isinstance(t, str)] or fields["tags"]
            fields["filename"] = fields["filename"] or file.filename
            content_type = file.content_type or "application/octet-stream"
            body = _chunks(file)
        elif content_type.startswith(BYTES_TYPES):
            body = request.stream()
        else:
            raise UnsupportedMediaType(
                f"{content_type!r}: send the video's bytes (application/octet-stream or video/*) or a "
                "multipart/form-data form with a 'file' field",
            )
        name = fields["filename"] or "upload"
        # a keyed upload is stored where its key says, so its retries find (and replay) it; any other gets a fresh key
        key = idempotency_key or uuid.uuid4().hex
        store = parts.get("store")
        object_key = store.key_for(tenant, name, event_id_for(tenant, key))
        registration = _registration(store.uri_of(object_key), name, fields)
        earlier = parts.get("registrar").replay(tenant, registration, key)
        if earlier is not None:
            return earlier
        stored = await store.store(object_key, body, content_type)
        try:
            return await run_in_threadpool(register, parts, tenant, registration, key, "upload")
        except NotDelivered as exc:
            if not exc.maybe:  # certainly not registered: nothing may be left behind
                await run_in_threadpool(store.delete, stored.uri)
            raise
        except PermanentError:
            await run_in_threadpool(store.delete, stored.uri)
            raise

    return router
