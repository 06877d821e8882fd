"""`clipstream reindex --model NEW`: re-embed the whole catalogue with another CLIP, without downtime.

The catalogue is the served video collection. Each video is decoded again from its source (keyframes
are not kept), embedded in-process with the new model, and written to the new model's collections,
which nothing serves yet; then both aliases switch, each in one atomic metadata operation. Searches
answer from the old collections throughout and from the new ones after the switch (the search engine
embeds queries in-process with the new model until Triton serves it). If any video fails, the aliases
stay put unless `force` is set, because switching would make those videos unsearchable.

Uploads keep arriving meanwhile and land in the old collections: reindex catches up (videos that are new,
or re-uploaded, in the old collection since they were re-embedded) until a pass finds nothing, switches,
waits `settle_s` for the embedder to notice the switch (from then on it embeds new uploads with the served
model), and catches up once more, so no upload is left behind in the collections nothing serves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from services.clip.loader import LoadedClip, load_clip
from services.common.errors import ClipstreamError
from services.common.filters import Filters
from services.common.messages import SegmentEmbedding, VideoInfo
from services.common.vectors import TAG_FIELDS, VIDEO_FIELDS, VIDEOS_ALIAS, SegmentStore, mean_vector
from services.media.decode import decode_video
from services.media.images import jpeg_to_pixels, thumbnail
from services.media.settings import MediaSettings
from services.media.sources import open_source

log = logging.getLogger(__name__)


@dataclass
class ReindexReport:
    collection: str = ""
    videos: int = 0
    segments: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    switched: bool = False


def reindex(
    store: SegmentStore,
    spec: str,
    media: MediaSettings,
    force: bool = False,
    progress: Callable[[str], None] = lambda _: None,
    settle_s: float = 15.0,
) -> ReindexReport:
    clip = load_clip(spec)
    old = store.served(VIDEOS_ALIAS)
    if old is None:
        raise RuntimeError("nothing is indexed yet: there is no catalogue to re-embed")
    current, _ = store.model_of(old)
    if current.version == clip.ref.version:
        raise RuntimeError(f"{old} is already embedded with {clip.ref.name}:{clip.ref.version}")
    report = ReindexReport(collection=store.ensure_collections(clip.ref, spec=spec, serve=False)[0])
    embedded: dict[str, int] = {}  # video id -> the upload time of the version re-embedded

    def catch_up() -> int:
        """Re-embed what the old collection holds that is new or newer than what was re-embedded."""
        todo = [
            row["video_id"]
            for rows in store.iter_rows(old, ["video_id", "uploaded_at"])
            for row in rows
            if embedded.get(row["video_id"], -1) < row["uploaded_at"] and row["video_id"] not in report.failed
        ]
        for start in range(0, len(todo), 100):
            expr = Filters(video_ids=todo[start : start + 100]).compile()
            for row in store.rows(expr, VIDEO_FIELDS, collection=old):
                if _reembed(store, clip, media, row, report):
                    embedded[row["video_id"]] = row["uploaded_at"]
                    progress(row["video_id"])
        return len(todo)

    while catch_up():
        pass
    if report.failed and not force:
        log.warning("reindex left the aliases alone", extra={"failed": len(report.failed)})
        return report
    store.switch_aliases(clip.ref)
    report.switched = True
    time.sleep(settle_s)
    while catch_up():
        pass
    return report


def _reembed(
    store: SegmentStore, clip: LoadedClip, media: MediaSettings, row: dict[str, Any], report: ReindexReport
) -> bool:
    try:
        with open_source(row["uri"], media.source_policy()) as source:
            decoded = decode_video(source, media.decode_options())
    except ClipstreamError as exc:  # permanent or transient (a source server down): that video is not re-embedded
        report.failed[row["video_id"]] = f"{exc.reason}: {exc.detail}"
        return False
    info = VideoInfo(
        uri=row["uri"],
        creator=row["creator"],
        tenant=row["tenant"],
        title=row["title"],
        uploaded_at=datetime.fromtimestamp(row["uploaded_at"], UTC),
        tags=[row[t] for t in TAG_FIELDS if row[t]],
        metadata=row.get("metadata") or {},
        width=decoded.probe.width,
        height=decoded.probe.height,
        duration_s=decoded.probe.duration_s,
    )
    embeddings = []
    for seg in decoded.segments:
        vectors = np.concatenate([clip.embed_pixels(jpeg_to_pixels(k.jpeg)[None]) for k in seg.keyframes])
        middle = seg.keyframes[len(seg.keyframes) // 2]
        embeddings.append(
            SegmentEmbedding(
                event_id=f"reindex-{clip.ref.version}"[:64],
                video_id=row["video_id"],
                segment_index=seg.index,
                segment_count=len(decoded.segments),
                start_s=seg.start_s,
                end_s=seg.end_s,
                keyframe_times=[k.t for k in seg.keyframes],
                vector=mean_vector(vectors),
                model=clip.ref,
                video=info,
                thumbnail=thumbnail(middle.jpeg),
            )
        )
    store.write_segments(clip.ref, embeddings)
    report.videos += 1
    report.segments += len(embeddings)
    return True
