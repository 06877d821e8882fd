"""Per-upload progress of one video, as a pure state transition the faust table stores.

Acks can repeat (the indexer is at-least-once towards Milvus) and a re-upload of the same video starts a new
run. The newest upload wins by its upload time, never merely by being a different event: an ack of an
older upload that arrives late is ignored instead of wiping the newer one's progress. A run that is complete
is dropped from the table (its `videos.indexed` event, published by the indexer, is the record), so the
table holds only uploads in flight.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict

from services.common.messages import SegmentIndexed


class Progress(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str
    uploaded_at: AwareDatetime | None = None
    expected: int
    indexed: tuple[int, ...] = ()

    @property
    def complete(self) -> bool:
        return len(self.indexed) >= self.expected


def _older(ack: SegmentIndexed, state: Progress) -> bool:
    if ack.uploaded_at is None or state.uploaded_at is None:
        return False
    return _as_utc(ack.uploaded_at) < _as_utc(state.uploaded_at)


def _as_utc(t: datetime) -> float:
    return t.timestamp()


def apply_ack(state: Progress | None, ack: SegmentIndexed) -> Progress | None:
    """The progress after `ack`; None when the run is complete (drop it from the table)."""
    if state is not None and state.event_id != ack.event_id:
        if _older(ack, state):
            return state  # a late ack of a superseded upload
        state = None
    if state is None:
        state = Progress(event_id=ack.event_id, uploaded_at=ack.uploaded_at, expected=ack.segment_count)
    if ack.segment_index in state.indexed:
        return state
    progress = state.model_copy(update={"indexed": tuple(sorted({*state.indexed, ack.segment_index}))})
    return None if progress.complete else progress
