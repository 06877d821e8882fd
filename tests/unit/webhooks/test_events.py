"""Outcome records read as webhook payloads: types, data, and ids that repeat for the same event only."""

import json
from datetime import UTC, datetime

from services.common.messages import (
    DuplicateMatch,
    QcFlag,
    Topics,
    VideoDuplicates,
    VideoQc,
    VideoStatus,
)
from services.webhooks.events import event_of, webhook_id

AT = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC)


def _status(stage: str, **extra: object) -> VideoStatus:
    fields = {"event_id": "e1", "video_id": "v1", "tenant": "t", "stage": stage, "updated_at": AT, **extra}
    return VideoStatus.model_validate(fields)


def _read(topic: str, record: object) -> dict:
    event = event_of(topic, record.model_dump_json().encode())  # type: ignore[attr-defined]
    assert event is not None
    return {"type": event.type, "id": event.webhook_id, "tenant": event.tenant, **json.loads(event.body)}


def test_indexed_failed_and_deleted_come_from_the_status_topic() -> None:
    indexed = _read(Topics.STATUS, _status("indexed", segment_count=3, segments_indexed=3, uploaded_at=AT))
    assert indexed["type"] == "video.indexed" and indexed["tenant"] == "t"
    assert indexed["timestamp"] == "2026-12-02T10:00:00Z"
    assert indexed["data"] == {
        "video_id": "v1",
        "event_id": "e1",
        "segment_count": 3,
        "uploaded_at": "2026-12-02T10:00:00Z",
    }
    failed = _read(Topics.STATUS, _status("failed", reason="corrupt_video", detail="bad", service="decoder"))
    assert failed["type"] == "video.failed"
    assert (failed["data"]["reason"], failed["data"]["detail"], failed["data"]["service"]) == (
        "corrupt_video",
        "bad",
        "decoder",
    )
    deleted = _read(Topics.STATUS, _status("deleted", uploaded_at=AT))
    assert deleted["type"] == "video.deleted" and deleted["data"]["deleted_at"] == "2026-12-02T10:00:00Z"
    assert len({indexed["id"], failed["id"], deleted["id"]}) == 3


def test_stages_in_between_and_tombstones_are_no_event() -> None:
    for stage in ("registered", "probed", "indexing"):
        assert event_of(Topics.STATUS, _status(stage).model_dump_json().encode()) is None
    assert event_of(Topics.STATUS, None) is None
    assert event_of(Topics.STATUS, _status("indexed", tenant="").model_dump_json().encode()) is None


def test_the_same_event_has_the_same_id_and_bytes_whatever_record_carries_it() -> None:
    first = event_of(Topics.STATUS, _status("indexed", segment_count=2).model_dump_json().encode())
    again = event_of(Topics.STATUS, _status("indexed", segment_count=2).model_dump_json().encode())
    assert first is not None and again is not None
    assert first.webhook_id == again.webhook_id == webhook_id("video.indexed", "v1", "e1")
    assert first.body == again.body
    other_upload = event_of(Topics.STATUS, _status("indexed", event_id="e2").model_dump_json().encode())
    assert other_upload is not None and other_upload.webhook_id != first.webhook_id


def _duplicates(matches: list[DuplicateMatch]) -> VideoDuplicates:
    return VideoDuplicates(
        event_id="e1",
        video_id="v1",
        tenant="t",
        collection="c",
        model_version="m",
        segment_threshold=0.9,
        matches=matches,
        checked_at=AT,
    )


def test_a_duplicate_verdict_is_an_event_only_when_it_found_something() -> None:
    assert event_of(Topics.DUPLICATES, _duplicates([]).model_dump_json().encode()) is None
    ranges = {"start_s": 0, "end_s": 4, "other_start_s": 0, "other_end_s": 4, "coverage": 1, "other_coverage": 1}
    match = DuplicateMatch(other_video_id="v0", kind="duplicate", score=0.99, segments=2, **ranges)
    found = _read(Topics.DUPLICATES, _duplicates([match]))
    assert found["type"] == "video.duplicate"
    assert found["data"]["matches"][0]["other_video_id"] == "v0" and found["data"]["matches"][0]["kind"] == "duplicate"


def test_a_qc_verdict_carries_its_flags() -> None:
    flag = QcFlag(check="temporal", start_s=3, end_s=6, score=0.4, threshold=0.8, reason="a jump")
    qc = VideoQc(
        event_id="e1",
        video_id="v1",
        tenant="t",
        collection="c",
        model_version="m",
        verdict="flagged",
        checks=["temporal"],
        flags=[flag],
        checked_at=AT,
    )
    found = _read(Topics.QC, qc)
    assert found["type"] == "video.qc" and found["data"]["verdict"] == "flagged"
    assert found["data"]["flags"][0]["check"] == "temporal" and found["data"]["checks"] == ["temporal"]
