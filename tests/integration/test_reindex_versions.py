"""What the reindex coordinator reads as a video's version, on a real Milvus Lite: a video whose first segment was
dead-lettered in the old collections is still backfilled, and in the new collections a version counts only when
every segment was written under its first segment's event (two backfills within one second differ by it alone)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from services.common.messages import ModelRef, SegmentEmbedding, VideoInfo
from services.common.settings import CommonSettings
from services.common.vectors import SegmentStore, videos_collection
from services.indexer.reindex import Control, Reindex, Version, backfill_event_id
from services.stack.milvus import private_milvus

OLD = ModelRef(name="versions", version="old1", dim=8)
NEW = ModelRef(name="versions", version="new1", dim=8)
AT = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _segment(model: ModelRef, video: str, index: int, count: int, event: str) -> SegmentEmbedding:
    vector = np.random.default_rng(index).normal(size=model.dim)
    return SegmentEmbedding(
        event_id=event,
        video_id=video,
        segment_index=index,
        segment_count=count,
        start_s=2.0 * index,
        end_s=2.0 * index + 2,
        keyframe_times=[2.0 * index + 1],
        vector=(vector / np.linalg.norm(vector)).tolist(),
        model=model,
        video=VideoInfo(uri=f"file:///{video}.mp4", tenant="t", uploaded_at=AT),
    )


@pytest.fixture(scope="module")
def store() -> Iterator[SegmentStore]:
    with tempfile.TemporaryDirectory() as data, private_milvus("lite", Path(data), port=39561) as uri:
        yield SegmentStore(CommonSettings(milvus_uri=uri))


def test_a_video_missing_its_first_segment_is_still_backfilled(store: SegmentStore) -> None:
    store.write_segments(OLD, [_segment(OLD, "whole", i, 2, "up-whole") for i in range(2)])
    store.write_segments(OLD, [_segment(OLD, "gap", i, 3, "up-gap") for i in (1, 2)])  # segment 0 dead-lettered
    store.write_segments(
        NEW, [_segment(NEW, "whole", i, 2, backfill_event_id(NEW, "whole", "up-whole")) for i in range(2)]
    )
    run = Reindex(store, CommonSettings(), NEW, "/models/new", Control(), drain=())
    at = int(AT.timestamp())
    versions = run._old_versions(videos_collection(OLD), None)
    assert versions == {"whole": Version(at, "up-whole"), "gap": Version(at, "")}
    assert run._old_versions(videos_collection(OLD), ["gap"]) == {"gap": Version(at, "")}
    assert run._todo(videos_collection(OLD)) == ["gap"]


def test_a_version_counts_only_when_every_segment_was_written_under_its_first_segments_event(
    store: SegmentStore,
) -> None:
    first, second = backfill_event_id(NEW, "mixed", "up-1"), backfill_event_id(NEW, "mixed", "up-2")
    store.write_segments(NEW, [_segment(NEW, "mixed", i, 3, first) for i in range(3)])
    store.write_segments(NEW, [_segment(NEW, "mixed", 0, 3, second)])  # re-uploaded in the same second: part written
    run = Reindex(store, CommonSettings(), NEW, "/models/new", Control(), drain=())
    assert "mixed" not in run._held(["mixed"]) and "mixed" not in run._held(None)
    store.write_segments(NEW, [_segment(NEW, "mixed", i, 3, second) for i in (1, 2)])
    at = int(AT.timestamp())
    assert run._held(["mixed"])["mixed"] == Version(at, second) == run._held(None)["mixed"]
