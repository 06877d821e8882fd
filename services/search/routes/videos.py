"""The caller's tenant's videos: the newest first (what the page shows before any query), one video with its
segments, and the near-duplicate stage's verdicts on it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.common.errors import InvalidRequest
from services.common.filters import Filters
from services.common.http import Tenant
from services.common.vectors import METADATA, TAG_FIELDS, Cursor
from services.search.deps import Engine
from services.search.routes.models import VideoId

router = APIRouter(tags=["videos"])
LISTED = ("video_id", "title", "creator", "uri", "uploaded_at", "duration_s", "width", "height", "segment_count")


@router.get("/v1/videos")
def latest_videos(
    tenant: Tenant,
    engine: Engine,
    limit: Annotated[int, Query(ge=1, le=100)] = 24,
    cursor: Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page")] = None,
) -> dict[str, Any]:
    """The tenant's videos, newest upload first, with the middle segment's thumbnail; `next_cursor` (null on
    the last page) fetches the next page. The tenant is the key's: there is no parameter to name another."""
    try:
        after = Cursor.decode(cursor) if cursor else None
    except ValueError as exc:
        raise InvalidRequest(f"cursor: {exc}") from exc
    rows, following = engine.latest(tenant, limit, after)
    videos = [
        {k: row.get(k) for k in LISTED}
        | {
            "tags": [t for f in TAG_FIELDS if (t := row.get(f))],
            "metadata": row.get(METADATA) or {},
            "thumbnail": f"data:image/jpeg;base64,{row['thumb']}" if row.get("thumb") else None,
        }
        for row in rows
    ]
    return {"videos": videos, "limit": limit, "next_cursor": following.encode() if following else None}


@router.get("/v1/videos/{video_id}")
def get_video(video_id: VideoId, tenant: Tenant, engine: Engine) -> dict[str, Any]:
    video, segments = engine.video(video_id, Filters(tenant=tenant))
    return {
        "video": {k: v for k, v in video.items() if k != "thumb"},
        "segments": [
            {k: s[k] for k in ("segment_index", "start_s", "end_s", "keyframe_s")}
            | {"thumbnail": f"data:image/jpeg;base64,{s['thumb']}" if s.get("thumb") else None}
            for s in segments
        ],
    }


@router.get("/v1/videos/{video_id}/duplicates")
def duplicates(video_id: VideoId, tenant: Tenant, engine: Engine) -> dict[str, Any]:
    """The near-duplicate stage's verdicts on this video (duplicate, contains, contained_in, from this
    video's side, with the matched time ranges) and its duplicate group."""
    return engine.duplicates(video_id, Filters(tenant=tenant))
