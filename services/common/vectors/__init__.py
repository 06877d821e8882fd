"""Milvus layout and access shared by the indexer (writes), search (reads) and reindex (both).

Two collections per model version, each served through an alias so a catalogue re-embedded with a new
model fills new collections and the aliases switch atomically:
- segments (`clipstream_segments`): one row per segment, pk `video_id#segment@model_version`;
- videos (`clipstream_videos`): one row per video, the normalised mean of its segment vectors, pk
  `video_id@model_version`, for video-to-video search and near-duplicate checks.

`layout` holds names, keys, fields and index settings; `rows` turns messages into rows; `search` finds the
best segment per video; `listing` orders the newest videos a page at a time; `store` owns the client:
collections, aliases, writes and reads.
"""

from services.common.vectors.layout import (
    METADATA,
    SEGMENTS_ALIAS,
    TAG_FIELDS,
    VIDEO_FIELDS,
    VIDEOS_ALIAS,
    IndexConfig,
    segment_pk,
    segments_collection,
    video_pk,
    videos_collection,
)
from services.common.vectors.listing import Cursor
from services.common.vectors.rows import mean_vector, segment_row
from services.common.vectors.search import SegmentHit
from services.common.vectors.store import SegmentStore

__all__ = [
    "METADATA",
    "SEGMENTS_ALIAS",
    "TAG_FIELDS",
    "VIDEOS_ALIAS",
    "VIDEO_FIELDS",
    "Cursor",
    "IndexConfig",
    "SegmentHit",
    "SegmentStore",
    "mean_vector",
    "segment_pk",
    "segment_row",
    "segments_collection",
    "video_pk",
    "videos_collection",
]
