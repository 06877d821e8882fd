"""Changing what is catalogued: takedowns and metadata corrections, both owned by the caller's tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam

from services.common.errors import Conflict, NotFound, PermanentError
from services.common.http import Tenant
from services.common.messages import Topics, VideoDeleted, VideoStatus, VideoUpdated
from services.gateway.deps import GatewayParts, Parts
from services.gateway.models import Accepted, VideoPatch

router = APIRouter(tags=["lifecycle"])
VideoId = Annotated[str, PathParam(max_length=128)]


def _owned(parts: Parts, video_id: str, tenant: str) -> VideoStatus:
    status = parts.get("view").video(video_id)
    if status is None or status.tenant != tenant:
        raise NotFound("no such video for this tenant")
    return status


@router.delete("/v1/videos/{video_id}", status_code=202, response_model=Accepted)
def delete_video(video_id: VideoId, tenant: Tenant, parts: GatewayParts) -> Accepted:
    """Remove the video from every collection (a takedown); late messages of it cannot bring it back."""
    _owned(parts, video_id, tenant)
    deleted = VideoDeleted(video_id=video_id, tenant=tenant)
    parts.publisher.deliver(Topics.DELETED, deleted, parts.settings.common.kafka_call_timeout_s)
    return Accepted(event_id=deleted.event_id, video_id=video_id, status_url=f"/v1/videos/{video_id}/status")


@router.patch("/v1/videos/{video_id}", status_code=202, response_model=Accepted)
def patch_video(video_id: VideoId, body: VideoPatch, tenant: Tenant, parts: GatewayParts) -> Accepted:
    """Correct title, creator, tags or free metadata in the index, without decoding or embedding again."""
    given = {k: v for k, v in body.model_dump().items() if v is not None}  # a null *inside* metadata stays
    if not given:
        raise PermanentError("nothing to change: give title, creator, tags or metadata", reason="empty_patch")
    if _owned(parts, video_id, tenant).stage == "deleted":
        raise Conflict("the video was deleted", reason="deleted")
    updated = VideoUpdated(video_id=video_id, tenant=tenant, **given)
    parts.publisher.deliver(Topics.UPDATED, updated, parts.settings.common.kafka_call_timeout_s)
    return Accepted(event_id=updated.event_id, video_id=video_id, status_url=f"/v1/videos/{video_id}/status")
