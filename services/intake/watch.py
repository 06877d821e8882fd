"""Follow uploads to their outcome: a `videos.indexed` event, or a dead letter that names the upload."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from services.common.kafka.config import consumer_config
from services.common.kafka.publisher import Publisher
from services.common.messages import DeadLetter, Topics, VideoIndexed, VideoUploaded
from services.common.settings import CommonSettings


@dataclass
class Outcomes:
    indexed: dict[str, VideoIndexed] = field(default_factory=dict)
    failed: dict[str, DeadLetter] = field(default_factory=dict)


class UploadWatch:
    """Positions at the end of the outcome topics on creation: start it before publishing."""

    def __init__(self, settings: CommonSettings) -> None:
        group = f"clipstream-watch-{uuid.uuid4().hex[:8]}"
        self._consumer = Consumer(consumer_config(settings, group, **{"enable.partition.eof": False}))
        topics = (Topics.INDEXED, Topics.DEAD_LETTER)
        meta = self._consumer.list_topics(timeout=30)
        partitions = []
        for topic in topics:
            for p in meta.topics[topic].partitions:
                _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                partitions.append(TopicPartition(topic, p, high if high >= 0 else OFFSET_END))
        self._consumer.assign(partitions)

    def wait(self, event_ids: Iterable[str], timeout_s: float) -> Outcomes:
        pending = set(event_ids)
        outcomes = Outcomes()
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            msg = self._consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            if msg.topic() == Topics.INDEXED:
                indexed = VideoIndexed.model_validate_json(msg.value() or b"")
                if indexed.event_id in pending:
                    outcomes.indexed[indexed.event_id] = indexed
                    pending.discard(indexed.event_id)
            else:
                letter = DeadLetter.model_validate_json(msg.value() or b"")
                event_id = _event_id(letter.payload)
                if event_id in pending:
                    outcomes.failed[event_id] = letter
                    pending.discard(event_id)
        return outcomes

    def close(self) -> None:
        self._consumer.close()


def _event_id(payload: bytes) -> str | None:
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    return value.get("event_id") if isinstance(value, dict) else None


def publish_and_wait(settings: CommonSettings, uploads: list[VideoUploaded], timeout_s: float | None) -> Outcomes:
    """Publish uploads; with a timeout, wait for each one's outcome (None: publish and return at once)."""
    watch = UploadWatch(settings) if timeout_s is not None else None
    publisher = Publisher(settings, "gateway")
    for upload in uploads:
        publisher.publish(Topics.UPLOADED, upload)
    publisher.flush()
    if watch is None:
        return Outcomes()
    try:
        return watch.wait([u.event_id for u in uploads], timeout_s or 0)
    finally:
        watch.close()
