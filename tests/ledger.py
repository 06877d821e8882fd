"""Count what the pipeline committed on every topic, per upload: the evidence for "once, nothing lost"."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

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
)
_PER_SEGMENT = {Topics.SEGMENTS, Topics.EMBEDDINGS, Topics.SEGMENTS_INDEXED}


@dataclass
class Ledger:
    """Committed messages counted by (topic, event_id[, segment_index]); dead letters by their event."""

    counts: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    dead: dict[str, list[DeadLetter]] = field(default_factory=dict)

    def duplicates(self) -> dict[tuple[str, str, int], int]:
        return {key: n for key, n in self.counts.items() if n > 1}

    def count(self, topic: str, event_id: str) -> int:
        return sum(n for (t, e, _), n in self.counts.items() if t == topic and e == event_id)


class TopicTap:
    """Remembers every topic's end on creation; `read()` returns what was committed since (read_committed)."""

    def __init__(self, settings: CommonSettings) -> None:
        config = consumer_config(
            settings, f"clipstream-ledger-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True}
        )
        self._consumer = Consumer(config)
        meta = self._consumer.list_topics(timeout=30)
        self._start: list[TopicPartition] = []
        for topic in PIPELINE_TOPICS:
            for p in meta.topics[topic].partitions:
                _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                self._start.append(TopicPartition(topic, p, max(high, 0)))

    def _drain(self, partitions: list[TopicPartition], idle_s: float) -> Iterator[tuple[str, bytes]]:
        """(topic, value) of every message from the remembered ends until none arrives for `idle_s`."""
        self._consumer.assign(partitions)
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            msg = self._consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            last = time.monotonic()
            yield msg.topic() or "", msg.value() or b""

    def read(self, event_ids: set[str], idle_s: float = 3.0) -> Ledger:
        ledger = Ledger()
        for topic, value in self._drain(self._start, idle_s):
            try:
                body = json.loads(value)
            except ValueError:
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

    def values(self, topic: str, idle_s: float = 3.0) -> list[bytes]:
        """The raw values committed to one topic since the tap was made."""
        return [value for _, value in self._drain([tp for tp in self._start if tp.topic == topic], idle_s)]

    def dead_letters(self, idle_s: float = 3.0) -> list[DeadLetter]:
        """Every dead letter committed since the tap was made."""
        partitions = [tp for tp in self._start if tp.topic == Topics.DEAD_LETTER]
        return [DeadLetter.model_validate_json(value) for _, value in self._drain(partitions, idle_s)]

    def close(self) -> None:
        self._consumer.close()
