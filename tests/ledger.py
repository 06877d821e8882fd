"""Count what the pipeline committed on every topic, per upload: the evidence for "once, nothing lost".

A tap remembers every partition's end when it is made. Each read takes the partitions' ends again (what
a read_committed consumer can reach at that moment) and reads everything from the remembered ends up to
those, every partition, or raises: a ledger that stopped early would hide the very duplicate it is there to
find, so there is no "quiet for a while, must be done" (a slow fetch, a broker restart or a busy topic would
end that early, or never).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from services.common.kafka.config import consumer_config
from services.common.messages import DeadLetter, Topics
from services.common.settings import CommonSettings

PIPELINE_TOPICS = (
    Topics.UPLOADED,
    Topics.PROBED,
    Topics.SEGMENTS,
    Topics.EMBEDDINGS,
    Topics.SEGMENTS_INDEXED,
    Topics.INDEXED,
    Topics.DEAD_LETTER,
    Topics.REMOVED,
    Topics.DUPLICATES,
    Topics.QC,
    Topics.TEXT,
)
_PER_SEGMENT = {Topics.SEGMENTS, Topics.EMBEDDINGS, Topics.SEGMENTS_INDEXED, Topics.TEXT}
_NO_LEADER_YET = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
}
SETTLE_S = 3.0
DRAIN_TIMEOUT_S = 120.0


@dataclass
class Ledger:
    """Committed messages counted by (topic, event_id[, segment_index]); dead letters by their event."""

    counts: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    dead: dict[str, list[DeadLetter]] = field(default_factory=dict)

    def duplicates(self) -> dict[tuple[str, str, int], int]:
        return {key: n for key, n in self.counts.items() if n > 1}

    def count(self, topic: str, event_id: str) -> int:
        return sum(n for (t, e, _), n in self.counts.items() if t == topic and e == event_id)

    def segments(self, topic: str, event_id: str) -> dict[int, int]:
        """Per segment index, the messages of one upload on a per-segment topic."""
        return {i: n for (t, e, i), n in self.counts.items() if t == topic and e == event_id}


def tally(records: Iterable[tuple[str, bytes]], event_ids: set[str]) -> Ledger:
    """The ledger of (topic, value) records for the given uploads: one count per message, per segment on the
    per-segment topics, and per source record for dead letters (the same record dead-lettered twice is a
    duplicate, two records of one upload are not)."""
    ledger = Ledger()
    for topic, value in records:
        try:
            body = json.loads(value)
        except ValueError:
            continue
        if not isinstance(body, dict):
            continue
        if topic == Topics.DEAD_LETTER:
            letter = DeadLetter.model_validate(body)
            try:
                event_id = json.loads(letter.payload).get("event_id", "")
            except (ValueError, AttributeError):
                event_id = ""
            if event_id in event_ids:
                ledger.dead.setdefault(event_id, []).append(letter)
                source = hash((letter.source_topic, letter.source_partition, letter.source_offset))
                ledger.counts[(topic, event_id, source)] += 1
            continue
        event_id = body.get("event_id", "")
        if event_id in event_ids:
            index = int(body.get("segment_index", -1)) if topic in _PER_SEGMENT else -1
            ledger.counts[(topic, event_id, index)] += 1
    return ledger


class LedgerIncomplete(AssertionError):
    """A read could not reach the ends it took in time: no ledger at all rather than part of one."""


class TopicTap:
    """Remembers every topic's end on creation; each read returns what was committed since (read_committed),
    up to the ends as they are when the read is asked (after `settle_s`). An end is the high watermark, not the
    last stable offset: a transaction still open when the read is asked is waited for until it is decided
    (committed, aborted, or timed out by the broker), since a duplicate may be in it."""

    def __init__(self, settings: CommonSettings, topics: Sequence[str] = PIPELINE_TOPICS) -> None:
        config = consumer_config(
            settings, f"clipstream-ledger-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True}
        )
        self._consumer = Consumer(config)
        # the ends come from a read_uncommitted client: with read_committed the broker answers the last stable
        # offset, which stops short of a transaction in flight
        self._marks = Consumer({**config, "isolation.level": "read_uncommitted"})
        try:
            meta = self._consumer.list_topics(timeout=30)
            self._start = self._ends([TopicPartition(t, p) for t in topics for p in meta.topics[t].partitions])
        except BaseException:
            self.close()
            raise

    def _ends(self, partitions: Iterable[TopicPartition], timeout_s: float = 30.0) -> list[TopicPartition]:
        """Each partition's high watermark (everything written, decided or not). A partition without a leader for
        the moment (a new topic, a broker restarting) is asked again."""
        deadline = time.monotonic() + timeout_s
        ends = []
        for tp in partitions:
            while True:
                try:
                    _, high = self._marks.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), 10, False)
                    break
                except KafkaException as exc:
                    error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                    if error is None or time.monotonic() > deadline:
                        raise
                    if not (error.retriable() or error.code() in _NO_LEADER_YET):
                        raise
                    time.sleep(0.2)
            ends.append(TopicPartition(tp.topic, tp.partition, max(high, 0)))
        return ends

    def _drain(self, starts: list[TopicPartition], settle_s: float, timeout_s: float) -> Iterator[tuple[str, bytes]]:
        """(topic, value) of every message from the remembered starts to the ends taken now, every partition."""
        if settle_s > 0:
            time.sleep(settle_s)
        ends = {(tp.topic, tp.partition): tp.offset for tp in self._ends(starts)}
        behind = {(tp.topic, tp.partition): tp.offset for tp in starts if ends[(tp.topic, tp.partition)] > tp.offset}
        if not behind:
            return
        self._consumer.assign([tp for tp in starts if (tp.topic, tp.partition) in behind])
        deadline = time.monotonic() + timeout_s
        trouble = ""  # the client retries what it can (a broker restarting): said if the read runs out of time
        try:
            while behind:
                if time.monotonic() > deadline:
                    raise LedgerIncomplete(
                        f"not at the ends after {timeout_s:.0f}s{trouble}: "
                        + ", ".join(f"{t}[{p}] at {at} of {ends[(t, p)]}" for (t, p), at in sorted(behind.items()))
                    )
                msg = self._consumer.poll(0.2)
                if msg is not None:
                    place, offset, error = (msg.topic() or "", msg.partition() or 0), msg.offset() or 0, msg.error()
                    if error is None:
                        if place in behind and offset < ends[place]:  # later ones belong to a later read
                            yield place[0], msg.value() or b""
                        if place in behind:
                            behind[place] = offset + 1
                    elif error.code() == KafkaError._PARTITION_EOF:
                        if place in behind:
                            behind[place] = max(behind[place], offset)
                    elif error.fatal():
                        raise KafkaException(error)
                    else:
                        trouble = f" (last error: {error})"
                # transaction markers are never delivered: the position moves past them
                for tp in self._consumer.position([TopicPartition(t, p) for t, p in behind]):
                    behind[(tp.topic, tp.partition)] = max(behind[(tp.topic, tp.partition)], tp.offset)
                behind = {place: at for place, at in behind.items() if at < ends[place]}
        finally:
            self._consumer.unassign()

    def read(self, event_ids: set[str], settle_s: float = SETTLE_S, timeout_s: float = DRAIN_TIMEOUT_S) -> Ledger:
        """The ledger of the given uploads over everything committed since the tap was made. `settle_s`: how long
        messages already on their way (a stage's open transaction) get before the ends are taken; the read then
        ends at those ends, or raises `LedgerIncomplete` after `timeout_s`."""
        return tally(self._drain(self._start, settle_s, timeout_s), event_ids)

    def values(self, topic: str, settle_s: float = SETTLE_S, timeout_s: float = DRAIN_TIMEOUT_S) -> list[bytes]:
        """The raw values committed to one topic since the tap was made."""
        starts = [tp for tp in self._start if tp.topic == topic]
        return [value for _, value in self._drain(starts, settle_s, timeout_s)]

    def dead_letters(self, settle_s: float = SETTLE_S, timeout_s: float = DRAIN_TIMEOUT_S) -> list[DeadLetter]:
        """Every dead letter committed since the tap was made."""
        return [DeadLetter.model_validate_json(value) for value in self.values(Topics.DEAD_LETTER, settle_s, timeout_s)]

    def close(self) -> None:
        self._consumer.close()
        self._marks.close()
