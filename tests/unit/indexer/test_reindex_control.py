"""The reindex coordinator's flow control at its limits, and the identity of its events."""

from __future__ import annotations

import time
from typing import cast

from services.common.messages import ModelRef
from services.common.settings import CommonSettings
from services.common.vectors import SegmentStore
from services.indexer.reindex import Control, Reindex, _counts, backfill_event_id

MODEL = ModelRef(name="clip-next", version="abc123", dim=8)


def _run(control: Control) -> Reindex:
    return Reindex(cast(SegmentStore, None), CommonSettings(), MODEL, "/models/next", control)


def test_in_flight_is_bounded_at_its_limit() -> None:
    run = _run(Control(in_flight=2))
    run._in_flight = {"a": 1}
    assert run._may_publish()
    run._in_flight["b"] = 1
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
    first = backfill_event_id(MODEL, "v1", 1000)
    assert first == backfill_event_id(MODEL, "v1", 1000) and len(first) <= 64
    assert first != backfill_event_id(MODEL, "v1", 1001)  # re-uploaded: another version
    assert first != backfill_event_id(MODEL, "v2", 1000)
    assert first != backfill_event_id(MODEL.model_copy(update={"version": "def456"}), "v1", 1000)


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
