"""Completion tracking of one upload's segments, as a pure state transition the faust table stores.

Acks can repeat (the indexer is at-least-once) and a re-upload of the same video starts a new run, so
state is keyed by video and reset when an ack with a newer event id arrives.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from services.common.messages import SegmentIndexed, VideoIndexed


class Completion(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str
    expected: int
    indexed: tuple[int, ...] = ()
    emitted: bool = False


def apply_ack(state: Completion | None, ack: SegmentIndexed) -> tuple[Completion, VideoIndexed | None]:
    if state is None or state.event_id != ack.event_id:
        state = Completion(event_id=ack.event_id, expected=ack.segment_count)
    if ack.segment_index in state.indexed or state.emitted:
        return state, None
    indexed = tuple(sorted({*state.indexed, ack.segment_index}))
    done = len(indexed) >= state.expected
    new_state = Completion(event_id=state.event_id, expected=state.expected, indexed=indexed, emitted=done)
    if not done:
        return new_state, None
    event = VideoIndexed(
        event_id=ack.event_id,
        video_id=ack.video_id,
        segment_count=state.expected,
        collection=ack.collection,
        model_version=ack.model_version,
    )
    return new_state, event
