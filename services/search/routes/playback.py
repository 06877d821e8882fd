"""Playback: a short-lived signed link for a `<video>` element (which cannot send a key), and the bytes
behind it."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, RedirectResponse

from services.common.errors import NotFound
from services.common.filters import Filters
from services.common.http import Tenant
from services.media.errors import DecodeError
from services.media.sources import playable
from services.search.deps import Engine, MediaPolicy, PlayLinks
from services.search.playback import BadLink
from services.search.routes.models import VideoId

router = APIRouter(tags=["playback"])


@router.get("/v1/videos/{video_id}/play")
def play(
    video_id: VideoId,
    tenant: Tenant,
    engine: Engine,
    links: PlayLinks,
    start_s: Annotated[float, Query(ge=0)] = 0.0,
) -> dict[str, Any]:
    """A short-lived link a `<video>` element can play, positioned at `start_s` (a media fragment)."""
    engine.video(video_id, Filters(tenant=tenant))  # 404 unless the tenant's
    return {"url": f"/media/{links.sign(video_id, tenant)}#t={start_s:.2f}", "expires_in_s": links.ttl_s}


@router.get("/media/{token}", include_in_schema=False)
def media(
    token: Annotated[str, PathParam(max_length=1024)], engine: Engine, links: PlayLinks, policy: MediaPolicy
) -> Response:
    """The bytes of a signed link's video: local files served with HTTP ranges, allowed http(s) sources
    and s3 objects (as presigned links) by redirect."""
    try:
        video_id, tenant = links.verify(token)
    except (BadLink, ValueError, KeyError) as exc:  # forged, garbled or expired: the capability is refused
        raise HTTPException(403, detail=getattr(exc, "detail", "the media link is not valid")) from exc
    video, _ = engine.video(video_id, Filters(tenant=tenant))
    try:
        where = playable(str(video["uri"]), policy, links.ttl_s)
    except DecodeError as exc:
        raise NotFound(f"{exc.reason}: the source cannot be served") from exc
    if isinstance(where, Path):
        media_type = mimetypes.guess_type(where.name)[0] or "application/octet-stream"
        return FileResponse(where, media_type=media_type)
    return RedirectResponse(where, status_code=307)
