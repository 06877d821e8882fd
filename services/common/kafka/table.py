"""A compacted topic followed into memory by every replica that reads it (a Kafka Streams global table).

The follower reads the whole topic from the beginning (no consumer group, nothing committed), hands each
record to `apply`, and keeps following. `sync()` is the read-your-writes step: it takes the partitions'
end offsets *now* and waits until the follower has read up to them, so a record another replica (or this
one) wrote before the call is visible after it, and a reader that cannot be sure answers "not yet" (503)
rather than a wrong "not found".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from services.common.kafka.config import consumer_config
from services.common.settings import CommonSettings

log = logging.getLogger(__name__)
CONTACT_S = 15.0  # how long without an answer from the broker before the table reads as not ready
Apply = Callable[[str, str, bytes | None], None]  # topic, key, value (None: a tombstone)


class TableFollower:
    def __init__(
        self,
        settings: CommonSettings,
        topics: Iterable[str],
        apply: Apply,
        name: str,
        start: Callable[[Consumer, TopicPartition], int] | None = None,
    ) -> None:
        """`start(consumer, partition)` picks where to begin (the beginning by default)."""
        self._settings = settings
        self._topics = list(topics)
        self._apply = apply
        self._name = name
        self._start = start
        self._positions: dict[tuple[str, int], int] = {}
        self._moved = threading.Condition()
        self._caught_up = threading.Event()
        self._stop = threading.Event()
        self._last_poll = 0.0
        self._last_contact = 0.0
        self._consumer: Consumer | None = None
        self._probe: Consumer | None = None
        self._probe_lock = threading.Lock()
        self._thread = threading.Thread(target=self._follow, name=name, daemon=True)

    def start(self) -> TableFollower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        with self._probe_lock:
            if self._probe is not None:
                self._probe.close()
                self._probe = None

    def ready(self) -> bool:
        """Caught up with the topics once, still polling them, and the broker answered lately (a follower
        that polls a broker that is gone makes no progress, and reads no one's writes)."""
        now = time.monotonic()
        return self._caught_up.is_set() and now - self._last_poll < 30 and now - self._last_contact < CONTACT_S

    def wait_caught_up(self, timeout_s: float) -> bool:
        return self._caught_up.wait(timeout_s)

    def sync(self, timeout_s: float, partitions: Iterable[tuple[str, int]] | None = None) -> bool:
        """Wait until everything written to these partitions (all: None) before this call has been applied."""
        if self._consumer is None or not self._caught_up.is_set():
            return False
        wanted = list(partitions) if partitions is not None else list(self._positions)
        deadline = time.monotonic() + timeout_s
        try:
            with self._probe_lock:  # the follower's own consumer is its thread's alone: ends come from a probe
                if self._probe is None:
                    self._probe = Consumer(consumer_config(self._settings, group_id=f"{self._name}-probe-{id(self)}"))
                ends = {
                    (topic, p): self._probe.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
                    for topic, p in wanted
                }
        except KafkaException:
            return False
        with self._moved:
            while any(self._positions.get(tp, 0) < end for tp, end in ends.items()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._moved.wait(left)
        return True

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                self._consume()
            except KafkaException as exc:
                log.warning("table follower lost Kafka, reconnecting", extra={"table": self._name, "error": str(exc)})
                self._stop.wait(2)

    def _consume(self) -> None:
        config = consumer_config(self._settings, group_id=f"{self._name}-{id(self)}")
        consumer = Consumer(config)
        try:
            assignment = []
            for topic in self._topics:
                meta = consumer.list_topics(topic, timeout=10)
                for p in sorted(meta.topics[topic].partitions):
                    tp = TopicPartition(topic, p)
                    tp.offset = self._start(consumer, tp) if self._start else OFFSET_BEGINNING
                    assignment.append(tp)
            consumer.assign(assignment)
            ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in assignment}
            with self._moved:
                for tp in assignment:  # a reconnect resumes where this follower was, the first start at its start
                    key = (tp.topic, tp.partition)
                    if key in self._positions:
                        consumer.seek(TopicPartition(tp.topic, tp.partition, self._positions[key]))
                    else:
                        low = consumer.get_watermark_offsets(tp, timeout=10)[0]
                        self._positions[key] = tp.offset if tp.offset >= 0 else low
            self._consumer = consumer
            self._last_contact = time.monotonic()
            while not self._stop.is_set():
                message = consumer.poll(0.2)
                self._last_poll = time.monotonic()
                if self._last_poll - self._last_contact > CONTACT_S / 3:
                    self._check_contact(consumer, assignment[0])
                if message is not None and message.error() is None:
                    self._last_contact = self._last_poll
                    topic, partition = message.topic() or "", message.partition() or 0
                    record_key = (message.key() or b"").decode("utf-8", "replace")
                    try:
                        self._apply(topic, record_key, message.value())
                    except Exception as exc:  # one unreadable record never stops the table
                        log.warning("unreadable table record skipped", extra={"table": self._name, "error": str(exc)})
                    with self._moved:
                        self._positions[(topic, partition)] = (message.offset() or 0) + 1
                        self._moved.notify_all()
                else:
                    self._advance_past_control_records(consumer)
                if not self._caught_up.is_set() and all(self._positions[tp] >= end for tp, end in ends.items()):
                    self._caught_up.set()
                    log.info("table caught up", extra={"table": self._name})
        finally:
            self._consumer = None
            consumer.close()

    def _check_contact(self, consumer: Consumer, tp: TopicPartition) -> None:
        try:
            consumer.get_watermark_offsets(tp, timeout=2, cached=False)
            self._last_contact = time.monotonic()
        except KafkaException:
            pass  # readiness turns false once the last contact is older than CONTACT_S

    def _advance_past_control_records(self, consumer: Consumer) -> None:
        """Transaction markers and aborted records are never delivered: take the consumer's position instead,
        so a partition whose last records are markers still counts as read to its end."""
        try:
            positions = consumer.position(consumer.assignment())
        except KafkaException:
            return
        with self._moved:
            for tp in positions:
                key = (tp.topic, tp.partition)
                if tp.offset >= 0 and tp.offset > self._positions.get(key, 0):
                    self._positions[key] = tp.offset
                    self._moved.notify_all()
