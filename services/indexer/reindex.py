"""`clipstream reindex --model NEW`: re-embed the whole catalogue with another CLIP, without downtime.

The catalogue is the served video collection. Each video is decoded again from its source (keyframes
are not kept), embedded in-process with the new model, and written to the new model's collections,
which nothing serves yet; then both aliases switch, each in one atomic metadata operation. Searches
answer from the old collections throughout and from the new ones after the switch (the search engine
embeds queries in-process with the new model until Triton serves it). If any video fails, the aliases
stay put unless `force` is set, because switching would make those videos unsearchable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from services.common.clip.loader import load_clip
from services.common.messages import SegmentEmbedding, VideoInfo
from services.common.vectors import TAG_FIELDS, VIDEO_FIELDS, VIDEOS_ALIAS, SegmentStore, mean_vector
from services.media.decode import decode_video
from services.media.errors import DecodeError
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
    decoder: MediaSettings,
    force: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> ReindexReport:
    clip = load_clip(spec)
    served = store.served(VIDEOS_ALIAS)
    if served is None:
        raise RuntimeError("nothing is indexed yet: there is no catalogue to re-embed")
    current, _ = store.model_of(served)
    if current.version == clip.ref.version:
        raise RuntimeError(f"{served} is already embedded with {clip.ref.name}:{clip.ref.version}")
    report = ReindexReport(collection=store.ensure_collections(clip.ref, spec=spec, serve=False)[0])
    options, sources = decoder.decode_options(), decoder.source_policy()
    for rows in store.iter_rows(served, VIDEO_FIELDS):
        for row in rows:
            try:
                with open_source(row["uri"], sources) as source:
                    decoded = decode_video(source, options)
            except DecodeError as exc:
                report.failed[row["video_id"]] = f"{exc.reason}: {exc.detail}"
                continue
            info = VideoInfo(
                uri=row["uri"],
                creator=row["creator"],
                tenant=row["tenant"],
                title=row["title"],
                uploaded_at=datetime.fromtimestamp(row["uploaded_at"], UTC),
                tags=[row[t] for t in TAG_FIELDS if row[t]],
                width=decoded.probe.width,
                height=decoded.probe.height,
                duration_s=decoded.probe.duration_s,
            )
            embeddings = []
            for seg in decoded.segments:
                pixels = [jpeg_to_pixels(k.jpeg) for k in seg.keyframes]
                vectors = (
                    clip.embed_pixels(np.stack(pixels))
                    if len({p.shape for p in pixels}) == 1
                    else (np.concatenate([clip.embed_pixels(p[None]) for p in pixels]))
                )
                middle = seg.keyframes[len(seg.keyframes) // 2]
                embeddings.append(
                    SegmentEmbedding(
                        event_id=f"reindex-{clip.ref.version}",
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
            progress(row["video_id"])
    if report.failed and not force:
        log.warning("reindex left the aliases alone", extra={"failed": len(report.failed)})
        return report
    store.switch_aliases(clip.ref)
    report.switched = True
    return report
