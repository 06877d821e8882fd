"""Direct, resumable uploads: the bytes go straight to the object store in presigned S3 multipart parts.

1. `POST /v1/uploads/multipart` declares the file (name, exact size, content type) and its registration (title,
   creator, tags, metadata); everything is checked before the store's upload is created (422, 413 past
   `max_multipart_bytes`, 415). 201: the upload id, the part size and URLs for the first parts.
2. The client PUTs each part's bytes to its URL, several at a time.
3. `GET /v1/uploads/multipart/{upload_id}`: the parts the store has and fresh URLs for the next ones still to
   send. After a cut connection, this is how a client resumes: it sends only what the store lacks.
4. `POST /v1/uploads/multipart/{upload_id}/complete`: every part there in its planned size (else 409 naming the
   missing ones, 422 those of another size), the object is completed and registered like every other upload
   (202 `Registered`); a retry replays the answer. An object whose registration certainly failed is deleted.
5. `DELETE /v1/uploads/multipart/{upload_id}`: abort (204).
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Annotated

from fastapi import APIRouter, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from services.common.errors import Conflict, PermanentError, TransientError, UnsupportedMediaType
from services.common.http import Tenant
from services.common.kafka.publisher import NotDelivered
from services.gateway.deps import GatewayParts, Parts
from services.gateway.multipart import MultipartStart, MultipartUpload, MultipartUploads, plan
from services.gateway.object_store import safe_name
from services.gateway.routes.registration import IdempotencyKey, register
from services.gateway.routes.uploads import BYTES_TYPES
from services.intake.models import Registered, Registration

router = APIRouter(tags=["uploads"])
UploadId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$", description="as POST /v1/uploads/multipart gave it")]


def _uploads(parts: Parts) -> MultipartUploads:
    return MultipartUploads(parts.get("store"))


def _key(upload_id: str, idempotency_key: str | None) -> str:
    """The registration's Idempotency-Key: the client's, or the upload's own, so that a retried complete
    registers once whatever the client sends."""
    return idempotency_key or f"multipart/{upload_id}"


@router.post("/v1/uploads/multipart", status_code=201, response_model=MultipartUpload)
def start(body: MultipartStart, tenant: Tenant, parts: GatewayParts, response: Response) -> MultipartUpload:
    """Declare a direct upload; nothing is created unless every field is acceptable."""
    if not body.content_type.startswith(BYTES_TYPES):
        raise UnsupportedMediaType(f"{body.content_type!r}: a video's type (video/*) or application/octet-stream")
    store = parts.get("store")
    upload_id = uuid.uuid4().hex
    key = store.key_for(tenant, body.filename, upload_id)
    try:
        registration = Registration(
            uri=store.uri_of(key),
            title=body.title or safe_name(body.filename),
            creator=body.creator,
            tags=body.tags,
            metadata=body.metadata,
        )
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from exc
    settings = parts.settings
    planned = plan(body.size, settings.upload_part_bytes, settings.max_multipart_bytes)
    parts.get("registrar").admit(tenant, registration)  # a source the decoder would refuse: 422 before any byte
    uploads = _uploads(parts)
    record = uploads.create(tenant, upload_id, planned, body.content_type, registration, key)
    response.headers["Location"] = f"/v1/uploads/multipart/{upload_id}"
    return uploads.answer(record, {})


@router.get("/v1/uploads/multipart/{upload_id}", response_model=MultipartUpload)
def progress(upload_id: UploadId, tenant: Tenant, parts: GatewayParts) -> MultipartUpload:
    """The parts the store has, and URLs for the next ones to send (how a client resumes)."""
    uploads = _uploads(parts)
    return uploads.state(uploads.find(tenant, upload_id))


@router.post("/v1/uploads/multipart/{upload_id}/complete", status_code=202, response_model=Registered)
def complete(
    upload_id: UploadId, tenant: Tenant, parts: GatewayParts, idempotency_key: IdempotencyKey = None
) -> Registered:
    """Complete the upload from the parts the store has and register the object (202: as `POST /v1/videos`)."""
    uploads = _uploads(parts)
    record = uploads.find(tenant, upload_id)
    if record.registered is not None:
        return record.registered.model_copy(update={"replayed": True})
    key = _key(upload_id, idempotency_key)
    earlier = parts.get("registrar").replay(tenant, record.registration, key)
    if earlier is not None:
        return earlier
    uploads.complete(record)
    try:
        answer = register(parts, tenant, record.registration, key, "multipart")
    except NotDelivered as exc:
        if not exc.maybe:  # certainly not registered: nothing may be left behind
            uploads.discard(record)
        raise
    except PermanentError:
        uploads.discard(record)
        raise
    with contextlib.suppress(TransientError):  # later retries replay it from the record (or the ledger)
        uploads.save(record.model_copy(update={"registered": answer}))
    return answer


@router.delete("/v1/uploads/multipart/{upload_id}", status_code=204)
def abort(upload_id: UploadId, tenant: Tenant, parts: GatewayParts) -> Response:
    """Abort the upload: its parts, its object (if completed but not registered) and its record are removed."""
    uploads = _uploads(parts)
    record = uploads.find(tenant, upload_id)
    if record.registered is not None or parts.get("registrar").replay(
        tenant, record.registration, _key(upload_id, None)
    ):
        raise Conflict(
            "the upload is registered: DELETE /v1/videos/{video_id} takes its video down", reason="registered"
        )
    uploads.discard(record)
    return Response(status_code=204)
