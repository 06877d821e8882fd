"""One indexed video of the caller's tenant: its segments, and the near-duplicate stage's verdicts on it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.common.filters import Filters
from services.common.http import Tenant
from services.search.deps import Engine
from services.search.routes.models import VideoId

router = APIRouter(tags=["videos"])


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
