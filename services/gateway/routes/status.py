"""Where uploads are: one upload or video, and cursor-paginated listings, from the gateway's status view."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from services.common.errors import InvalidRequest, NotFound
from services.common.http import Tenant
from services.common.messages import VideoStatus
from services.gateway.deps import GatewayParts
from services.gateway.models import Page, Status
from services.gateway.status_view import cursor_of

router = APIRouter(tags=["status"])
StageName = Literal["registered", "probed", "indexing", "indexed", "failed", "deleted"]


def _mine(status: VideoStatus | None, tenant: str, what: str) -> VideoStatus:
    if status is None or status.tenant != tenant:
        raise NotFound(f"no such {what} for this tenant")
    return status


@router.get("/v1/uploads/{event_id}", response_model=Status)
def upload_status(event_id: Annotated[str, PathParam(max_length=64)], tenant: Tenant, parts: GatewayParts) -> Status:
    return Status.of(_mine(parts.get("view").upload(event_id), tenant, "upload"), event_id)


@router.get("/v1/videos/{video_id}/status", response_model=Status)
def video_status(video_id: Annotated[str, PathParam(max_length=128)], tenant: Tenant, parts: GatewayParts) -> Status:
    return Status.of(_mine(parts.get("view").video(video_id), tenant, "video"))


def _decode_cursor(cursor: str | None) -> tuple[float, str] | None:
    if not cursor:
        return None
    try:
        when, video_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(when), str(video_id)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest("the cursor is not one this API gave out", reason="bad_cursor") from exc


def _encode_cursor(status: VideoStatus) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(cursor_of(status))).encode()).decode()


def _page(parts: GatewayParts, tenant: str, stage: str | None, cursor: str | None, limit: int) -> Page:
    found = parts.get("view").listing(
        tenant, limit + 1, _decode_cursor(cursor), keep=lambda s: stage is None or s.stage == stage
    )
    more = len(found) > limit
    items = found[:limit]
    return Page(items=[Status.of(s) for s in items], next_cursor=_encode_cursor(items[-1]) if more else None)


Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]


@router.get("/v1/videos", response_model=Page)
def list_videos(
    tenant: Tenant, parts: GatewayParts, stage: StageName | None = None, cursor: Cursor = None, limit: Limit = 20
) -> Page:
    """The tenant's videos with their newest upload's status, newest upload first."""
    return _page(parts, tenant, stage, cursor, limit)


@router.get("/v1/uploads", response_model=Page)
def list_uploads(
    tenant: Tenant, parts: GatewayParts, stage: StageName | None = None, cursor: Cursor = None, limit: Limit = 20
) -> Page:
    """The tenant's uploads (each video's newest), newest first; `stage=failed` lists what needs attention."""
    return _page(parts, tenant, stage, cursor, limit)
