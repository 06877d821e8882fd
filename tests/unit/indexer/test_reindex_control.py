"""The reindex coordinator's flow control at its limits, and the identity of its events."""

from __future__ import annotations

import time
from typing import cast

import pytest

from services.common.kafka.publisher import Delivery, NotDelivered
from services.common.messages import ModelRef, Topics, is_backfill
from services.common.retry import RetryPolicy
from services.common.settings import CommonSettings, stage_group_id
from services.common.vectors import SegmentStore
from services.indexer.reindex import (
    VERSION,
    Control,
    Reindex,
    Version,
    _counts,
    backfill_event_id,
    current,
    stage_groups,
)

MODEL = ModelRef(name="clip-next", version="abc123", dim=8)


def _run(control: Control) -> Reindex:
    return Reindex(cast(SegmentStore, None), CommonSettings(), MODEL, "/models/next", control, drain=())


def test_in_flight_is_bounded_at_its_limit() -> None:
    run = _run(Control(in_flight=2))
    run._in_flight = {"a": Version(1, "u")}
    assert run._may_publish()
    run._in_flight["b"] = Version(1, "u")
    assert not run._may_publish()  # 2 published and not indexed: at the limit


def test_pause_publishes_nothing_until_resumed() -> None:
    run = _run(Control())
    run.pause()
    assert not run._may_publish()
    run.resume()
    assert run._may_publish()


def test_rate_spaces_publishes() -> None:
    run = _run(Control(rate=2.0))
    assert run._may_publish()
    run._last_publish = time.monotonic()
    assert not run._may_publish()  # the next one is due 0.5 s after the last
    run._last_publish = time.monotonic() - 0.51
    assert run._may_publish()
    run.set_control(Control(rate=0.0))
    run._last_publish = time.monotonic()
    assert run._may_publish()  # 0: unlimited


def test_an_event_id_names_the_video_version_and_the_target() -> None:
    first = backfill_event_id(MODEL, "v1", "upload-1")
    assert first == backfill_event_id(MODEL, "v1", "upload-1") and len(first) <= 64 and is_backfill(first)
    assert first != backfill_event_id(MODEL, "v1", "upload-2")  # re-uploaded (in the same second too)
    assert first != backfill_event_id(MODEL, "v2", "upload-1")
    assert first != backfill_event_id(MODEL.model_copy(update={"version": "def456"}), "v1", "upload-1")


def test_the_new_collections_are_current_at_a_later_second_or_at_the_same_version() -> None:
    old = Version(100, "upload-1")
    ours = backfill_event_id(MODEL, "v1", "upload-1")
    assert not current(None, old, MODEL, "v1")
    assert current(Version(101, backfill_event_id(MODEL, "v1", "upload-0")), old, MODEL, "v1")  # re-uploaded since
    assert not current(Version(99, ours), old, MODEL, "v1")  # an earlier version there: not yet
    assert current(Version(100, ours), old, MODEL, "v1")  # this very version's backfill
    # re-uploaded within the second: the backfill of the version before is not this one
    assert not current(Version(100, backfill_event_id(MODEL, "v1", "upload-0")), old, MODEL, "v1")
    assert current(Version(100, "upload-2"), old, MODEL, "v1")  # an upload written there after the switch
    assert not current(Version(100, backfill_event_id(MODEL, "v2", "upload-1")), old, MODEL, "v1")


def test_progress_reports_rate_and_eta_from_the_last_minute() -> None:
    run = _run(Control())
    run._total, run._done = 100, 40
    now = time.monotonic()
    run._history.extend([(now - 10, 20), (now, 40)])
    progress = run.progress()
    assert progress.rate_per_s == 2.0 and progress.eta_s == 30.0
    assert (progress.done, progress.total, progress.state) == (40, 100, "starting")


def test_a_segment_counts_toward_its_video_only_at_that_version_and_within_its_count() -> None:
    video = {"uploaded_at": 100, "segment_count": 3}
    assert _counts({"segment_index": 2, "uploaded_at": 100}, video)
    assert not _counts({"segment_index": 3, "uploaded_at": 100}, video)  # beyond the count: an older, longer cut
    assert not _counts({"segment_index": 0, "uploaded_at": 99}, video)  # another version of the video
    assert not _counts({"segment_index": 0, "uploaded_at": 100}, None)  # no video row yet


def test_an_undelivered_event_goes_out_again_after_a_backoff_and_fails_at_the_last_attempt() -> None:
    run = _run(Control())
    policy = run._policy
    row = {"video_id": "v1", VERSION: Version(7, "upload-1")}
    for failures in range(policy.max_attempts):
        delivery: Delivery = Delivery()
        delivery.set_exception(NotDelivered("videos.backfill: Local: Message timed out"))
        run._in_flight["v1"], run._deliveries["v1"] = Version(7, "upload-1"), (delivery, row, failures)
        before = time.monotonic()
        run._redeliver()
        assert "v1" not in run._in_flight and "v1" not in run._deliveries
        if failures + 1 < policy.max_attempts:
            ((not_before, again, count),) = run._retry
            assert again is row and count == failures + 1
            assert not_before >= before + policy.backoff_s(failures + 1)
            assert "v1" not in run.report.failed
            run._retry.clear()
        else:  # the last attempt: failed with Kafka's reason, nothing more to publish
            assert not run._retry
            assert run.report.failed["v1"].startswith("reindex: kafka_unavailable: videos.backfill: Local")


def test_a_delivered_event_stays_in_flight_and_a_pending_report_is_left_alone() -> None:
    run = _run(Control())
    delivered: Delivery = Delivery()
    delivered.set_result((0, 1))
    pending: Delivery = Delivery()
    flying = {"v1": Version(3, "u1"), "v2": Version(4, "u2")}
    run._in_flight = dict(flying)
    run._deliveries = {"v1": (delivered, {"video_id": "v1", VERSION: flying["v1"]}, 0)}
    run._deliveries["v2"] = (pending, {"video_id": "v2", VERSION: flying["v2"]}, 0)
    run._redeliver()
    assert run._in_flight == flying and list(run._deliveries) == ["v2"] and not run._retry


def test_a_failed_report_of_a_video_no_longer_in_flight_at_that_version_is_dropped() -> None:
    """Re-uploaded meanwhile (the next pass sees what stands): the old version's failure schedules nothing."""
    run = _run(Control())
    failed: Delivery = Delivery()
    failed.set_exception(NotDelivered("videos.backfill: Local: Message timed out"))
    run._in_flight = {"v1": Version(3, "upload-2")}  # re-uploaded within the second
    run._deliveries = {"v1": (failed, {"video_id": "v1", VERSION: Version(3, "upload-1")}, 0)}
    run._redeliver()
    assert run._in_flight == {"v1": Version(3, "upload-2")} and not run._retry and not run.report.failed


def test_backoff_doubles_from_its_first_wait_up_to_its_longest() -> None:
    policy = RetryPolicy(backoff_initial_s=0.5, backoff_max_s=30.0)
    assert [policy.backoff_s(n) for n in (1, 2, 3, 6, 7, 8)] == [0.5, 1.0, 2.0, 16.0, 30.0, 30.0]
    assert policy.backoff_s(0) == 0.5


def test_the_groups_a_reindex_drains_are_the_stages_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedder's and indexer's groups as the reindex reads them (without importing those stages) are theirs,
    by default and when set in env."""
    from services.decoder.settings import DecoderSettings
    from services.embedder.settings import EmbedderSettings
    from services.indexer.settings import IndexerSettings

    assert stage_groups() == (
        (Topics.SEGMENTS, EmbedderSettings().group_id),
        (Topics.EMBEDDINGS, IndexerSettings().group_id),
    )
    assert stage_group_id("decoder") == DecoderSettings().group_id == "clipstream-decoder"
    monkeypatch.setenv("CLIPSTREAM_EMBEDDER_GROUP_ID", "team-embedder")
    monkeypatch.setenv("CLIPSTREAM_INDEXER_GROUP_ID", "team-indexer")
    assert stage_groups() == ((Topics.SEGMENTS, "team-embedder"), (Topics.EMBEDDINGS, "team-indexer"))
    assert (EmbedderSettings().group_id, IndexerSettings().group_id) == ("team-embedder", "team-indexer")
