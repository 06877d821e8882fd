"""The status projection: records merge the same way whatever order they arrive in."""

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from services.common.messages import (
    DeadLetter,
    SegmentIndexed,
    Topics,
    VideoIndexed,
    VideoProbed,
    VideoRemoved,
    VideoStatus,
    VideoUploaded,
)
from services.enricher import status

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _merge(records: list[VideoStatus]) -> VideoStatus:
    current: VideoStatus | None = None
    for r in records:
        if current is None or r.supersedes(current):
            current = r.merged(current)
    assert current is not None
    return current


def _run(event_id: str, uploaded_at: datetime) -> list[VideoStatus]:
    up = VideoUploaded(event_id=event_id, video_id="v1", uri="file:///x.mp4", tenant="t", uploaded_at=uploaded_at)
    common: dict[str, Any] = {"event_id": event_id, "video_id": "v1", "tenant": "t", "uploaded_at": uploaded_at}
    probe = VideoProbed(**common, container="mp4", codec="h264", width=2, height=2, duration_s=1.0, segment_count=2)
    ack = SegmentIndexed(**common, segment_index=0, segment_count=2, collection="c", model_version="1")
    done = VideoIndexed(**common, segment_count=2, collection="c", model_version="1")
    return [status.registered(up), status.probed(probe), status.indexing(ack, 1), status.indexed(done)]


def test_any_arrival_order_ends_indexed() -> None:
    for order in itertools.permutations(_run("e1", T0)):
        final = _merge(list(order))
        assert final.stage == "indexed" and final.segments_indexed == 2 and final.tenant == "t"


def test_a_newer_upload_wins_and_a_delete_wins_over_what_came_before_it() -> None:
    old, new = _run("e1", T0), _run("e2", T0 + timedelta(minutes=1))
    assert _merge([*new, *old]).event_id == "e2"
    removed = VideoRemoved(event_id="d1", video_id="v1", tenant="t", deleted_at=T0 + timedelta(minutes=2))
    assert _merge([*new, status.deleted(removed), *old]).stage == "deleted"
    reupload = _run("e3", T0 + timedelta(minutes=3))
    assert _merge([status.deleted(removed), *reupload]).event_id == "e3"


def test_a_dead_letter_names_its_upload_or_nothing() -> None:
    payload = {"event_id": "e1", "video_id": "v1", "tenant": "t", "uri": "file:///x.mp4", "uploaded_at": T0.isoformat()}
    letter = DeadLetter.of(
        "decoder", "corrupt_video", "bad", ("videos.uploaded", 0, 1), b"v1", json.dumps(payload).encode()
    )
    failed = status.failed(letter)
    assert failed is not None and (failed.stage, failed.reason, failed.tenant) == ("failed", "corrupt_video", "t")
    assert _merge([*_run("e1", T0)[:2], failed]).stage == "failed"
    assert status.failed(DeadLetter.of("x", "malformed_message", "", ("t", 0, 0), None, b"{not json")) is None
    after = DeadLetter.of("qc", "source_not_allowed", "bad reference", (Topics.INDEXED, 0, 1), b"v1", b"{}")
    after = after.model_copy(update={"payload": json.dumps(payload | {"segment_count": 2}).encode()})
    assert status.failed(after) is None  # QC or near-duplicates giving up leaves an indexed video indexed


def test_the_projection_reads_each_observed_topic_and_skips_what_it_cannot_read() -> None:
    up = VideoUploaded(event_id="e1", video_id="v1", uri="file:///x.mp4", tenant="t", uploaded_at=T0)
    record = status.project(Topics.UPLOADED, up.model_dump_json().encode())
    assert record is not None and (record.stage, record.tenant) == ("registered", "t")
    removed = VideoRemoved(event_id="d1", video_id="v1", tenant="t", deleted_at=T0)
    assert status.project(Topics.REMOVED, removed.model_dump_json().encode()).stage == "deleted"  # type: ignore[union-attr]
    assert status.project(Topics.PROBED, b"{not json") is None
    assert set(status.OBSERVED) == {Topics.UPLOADED, Topics.PROBED, Topics.INDEXED, Topics.REMOVED, Topics.DEAD_LETTER}
