"""A held consumer (a backfill giving way to fresh uploads) takes nothing while held and loses nothing: on
the real broker, messages published while it is held are all handled once it is released; held for ever, it
still takes a batch every `max_hold_s` (a reindex is slowed by busy uploads, never stalled)."""

from __future__ import annotations

import itertools
import threading
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from services.common.kafka.codec import encode
from services.common.kafka.config import producer_config
from services.common.kafka.processor import ProcessorConfig, Received, Result, TransactionalProcessor
from services.common.messages import VideoIndexed
from services.common.settings import CommonSettings


def test_a_held_consumer_takes_nothing_and_then_everything(common: CommonSettings) -> None:
    _held_then_released(common, max_hold_s=300.0, release=True)


def test_a_consumer_held_for_ever_still_takes_a_batch_every_max_hold_s(common: CommonSettings) -> None:
    _held_then_released(common, max_hold_s=3.0, release=False)


def _held_then_released(common: CommonSettings, max_hold_s: float, release: bool) -> None:
    topic = f"hold-test-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": common.kafka_bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]).values():
        future.result(30)
    handled: list[str] = []
    batches: list[float] = []  # when each batch was handled
    held = threading.Event()
    held.set()

    def handle(batch: list[Received[VideoIndexed]]) -> list[Result]:
        handled.extend(r.value.event_id for r in batch)
        batches.append(time.monotonic())
        return []

    config = ProcessorConfig(
        service="hold-test",
        group_id=f"hold-test-{uuid.uuid4().hex[:8]}",
        input_topic=topic,
        max_batch=4,
        hold=held.is_set,
        max_hold_s=max_hold_s,
        consumer_overrides={"auto.offset.reset": "earliest"},
    )
    processor: TransactionalProcessor[VideoIndexed] = TransactionalProcessor(common, config, VideoIndexed, handle)
    stop = threading.Event()
    worker = threading.Thread(target=processor.run, args=(stop,), daemon=True)
    worker.start()
    try:
        producer = Producer(producer_config(common))
        sent = [f"e{i}" for i in range(12)]
        for event_id in sent:
            message = VideoIndexed(event_id=event_id, video_id="v1", segment_count=1, collection="c", model_version="1")
            producer.produce(topic, key=event_id.encode(), value=encode(message))
        assert producer.flush(30) == 0
        if release:
            time.sleep(8)  # the group formed and partitions assigned meanwhile; held: nothing fetched
            assert processor.ready() and handled == []
            held.clear()
        deadline = time.monotonic() + 60
        while len(handled) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sorted(handled) == sorted(sent)
        if not release:  # held throughout: each batch after a hold of max_hold_s (the clock restarts after a batch)
            gaps = [b - a for a, b in itertools.pairwise(batches)]
            assert len(batches) >= 3 and all(gap >= 0.8 * max_hold_s for gap in gaps), gaps
        assert processor.active(quiet_s=30)
    finally:
        stop.set()
        worker.join(60)
        admin.delete_topics([topic])
