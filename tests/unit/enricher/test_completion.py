from services.common.messages import SegmentIndexed
from services.enricher.completion import apply_ack


def ack(i: int, event: str = "e1", count: int = 3) -> SegmentIndexed:
    return SegmentIndexed(
        event_id=event, video_id="v1", segment_index=i, segment_count=count, collection="c", model_version="m"
    )


def test_emits_once_when_every_segment_is_acked_in_any_order() -> None:
    state, emitted = None, []
    for i in (2, 0, 0, 2, 1, 1):
        state, done = apply_ack(state, ack(i))
        if done:
            emitted.append(done)
    assert len(emitted) == 1
    assert emitted[0].segment_count == 3
    assert state is not None and state.emitted


def test_reupload_starts_a_new_run() -> None:
    state = None
    for i in range(3):
        state, _ = apply_ack(state, ack(i, "e1"))
    state, done = apply_ack(state, ack(0, "e2", count=2))
    assert done is None and state.indexed == (0,)
    state, done = apply_ack(state, ack(1, "e2", count=2))
    assert done is not None and done.event_id == "e2"


def test_incomplete_run_does_not_emit() -> None:
    state, done = apply_ack(None, ack(0))
    state, done = apply_ack(state, ack(1))
    assert done is None
