from dataclasses import dataclass

from services.common.kafka.processor import _first_offsets, _next_offsets


@dataclass
class FakeRecord:
    """Only the three accessors the offset arithmetic reads; a real Message cannot be built offline."""

    t: str
    p: int
    o: int

    def topic(self) -> str:
        return self.t

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o


def test_commit_offsets_are_one_past_the_last_message_per_partition() -> None:
    msgs = [FakeRecord("a", 0, 5), FakeRecord("a", 1, 9), FakeRecord("a", 0, 7), FakeRecord("a", 0, 6)]
    got = sorted((tp.topic, tp.partition, tp.offset) for tp in _next_offsets(msgs))  # type: ignore[arg-type]
    assert got == [("a", 0, 8), ("a", 1, 10)]


def test_rewind_offsets_are_the_first_message_per_partition() -> None:
    msgs = [FakeRecord("a", 0, 5), FakeRecord("a", 1, 9), FakeRecord("a", 0, 3)]
    got = sorted((tp.topic, tp.partition, tp.offset) for tp in _first_offsets(msgs))  # type: ignore[arg-type]
    assert got == [("a", 0, 3), ("a", 1, 9)]
