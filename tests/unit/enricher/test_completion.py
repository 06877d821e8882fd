from datetime import UTC, datetime, timedelta

from services.common.messages import SegmentIndexed
from services.enricher.completion import apply_ack

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ack(i: int, event: str = "e1", count: int = 3, uploaded_at: datetime = T0) -> SegmentIndexed:
    return SegmentIndexed(
        event_id=event,
        video_id="v1",
        segment_index=i,
        segment_count=count,
        collection="c",
        model_version="m",
        uploaded_at=uploaded_at,
    )


def test_progress_grows_with_repeated_acks_and_is_dropped_when_complete() -> None:
    state = apply_ack(None, ack(2))
    state = apply_ack(state, ack(2))
    assert state is not None and state.indexed == (2,)
    state = apply_ack(state, ack(0))
    assert state is not None and state.indexed == (0, 2)
    assert apply_ack(state, ack(1)) is None  # complete: pruned from the table


def test_a_newer_upload_starts_a_new_run() -> None:
    state = apply_ack(None, ack(0, "e1"))
    state = apply_ack(state, ack(0, "e2", count=2, uploaded_at=T0 + timedelta(seconds=5)))
    assert state is not None and state.event_id == "e2" and state.indexed == (0,)


def test_a_late_ack_of_an_older_upload_does_not_wipe_the_newer_run() -> None:
    newer = apply_ack(None, ack(0, "e2", count=2, uploaded_at=T0 + timedelta(seconds=5)))
    state = apply_ack(newer, ack(1, "e1", uploaded_at=T0))
    assert state == newer
