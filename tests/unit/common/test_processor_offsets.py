from services.common.kafka.processor import _first_offsets, _next_offsets
from tests.kafka_records import Record


def test_commit_offsets_are_one_past_the_last_message_per_partition() -> None:
    msgs = [Record(5, None, 0, "a"), Record(9, None, 1, "a"), Record(7, None, 0, "a"), Record(6, None, 0, "a")]
    got = sorted((tp.topic, tp.partition, tp.offset) for tp in _next_offsets(msgs))  # type: ignore[arg-type]
    assert got == [("a", 0, 8), ("a", 1, 10)]


def test_rewind_offsets_are_the_first_message_per_partition() -> None:
    msgs = [Record(5, None, 0, "a"), Record(9, None, 1, "a"), Record(3, None, 0, "a")]
    got = sorted((tp.topic, tp.partition, tp.offset) for tp in _first_offsets(msgs))  # type: ignore[arg-type]
    assert got == [("a", 0, 3), ("a", 1, 9)]
