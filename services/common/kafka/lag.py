"""Consumer lag as a Prometheus gauge, read from librdkafka's own statistics: no extra broker requests, and
what a lag alert needs from every replica of every stage (its assigned partitions only); and a group's backlog
as of a moment, which the reindex waits on."""

from __future__ import annotations

import json
import logging
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from prometheus_client import Gauge

from services.common.kafka.config import consumer_config
from services.common.settings import CommonSettings

LAG = Gauge(
    "clipstream_consumer_lag",
    "Messages of an assigned partition not yet consumed (high watermark minus the next offset to consume)",
    ["service", "topic", "partition"],
)
LAG_EVERY_MS = 10_000

log = logging.getLogger(__name__)


class ConsumerLag:
    """The `stats_cb` of one consumer: sets the gauge per assigned partition, drops partitions it lost."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._seen: set[tuple[str, str]] = set()

    def update(self, stats: str) -> None:
        current: set[tuple[str, str]] = set()
        for topic, found in json.loads(stats).get("topics", {}).items():
            for partition, numbers in found.get("partitions", {}).items():
                # consumer_lag_stored: against the offset stored as each message is handed to us; the
                # committed one is unknown to the consumer when offsets go through the transaction
                lag = numbers.get("consumer_lag_stored", numbers.get("consumer_lag", -1))
                if partition == "-1" or lag is None or lag < 0:
                    continue  # librdkafka's internal partition, or not (yet) fetched
                LAG.labels(self.service, topic, partition).set(lag)
                current.add((topic, partition))
        for topic, partition in self._seen - current:
            LAG.remove(self.service, topic, partition)
        self._seen = current


class Backlog:
    """Whether a consumer group has taken every message a topic held when this was made: the reindex waits on it
    after its switch, so that work the stages took in under the old model is out before its last passes.

    Offsets alone cannot say it: transaction markers take offsets, so a group that consumed everything commits
    an offset below the high watermark. So a partition whose committed offset is below the mark is read
    (read_committed, from that offset, never committing): a message below the mark is work left; the partition's
    end, or a message at or past the mark, is none. Messages of a transaction still open count as none: they
    reach the group after it, which is what the reindex needs."""

    def __init__(self, settings: CommonSettings, topic: str, group: str) -> None:
        self.topic, self.group = topic, group
        self._admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
        # reads only to decide whether a message lies before the mark: small fetches a partition (Kafka still
        # returns one message larger than this)
        probe = {"enable.partition.eof": True, "max.partition.fetch.bytes": 65536}
        self._probe = Consumer(consumer_config(settings, f"{group}-backlog-probe", **probe))
        self.committed_any = False  # whether the group has committed any offset on the topic (else: which group?)
        try:
            partitions = self._probe.list_topics(topic, timeout=30).topics[topic].partitions
            self.marks = {
                p: self._probe.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in partitions
            }
        except BaseException:
            self._probe.close()
            raise

    def drained(self, timeout_s: float = 10.0) -> bool:
        """Whether the group has taken every message before the marks; False too when Kafka did not answer (the
        caller asks again)."""
        try:
            return self._drained(timeout_s)
        except (KafkaException, TimeoutError) as exc:
            log.warning("backlog unknown: Kafka did not answer", extra={"group": self.group, "error": str(exc)})
            return False

    def _drained(self, timeout_s: float) -> bool:
        request = ConsumerGroupTopicPartitions(self.group, [TopicPartition(self.topic, p) for p in self.marks])
        (future,) = self._admin.list_consumer_group_offsets([request], request_timeout=timeout_s).values()
        committed = {tp.partition: tp.offset for tp in future.result(timeout_s).topic_partitions}
        self.committed_any = self.committed_any or any(offset >= 0 for offset in committed.values())
        behind = {p: committed.get(p, -1) for p, mark in self.marks.items() if committed.get(p, -1) < mark}
        if not behind:
            return True
        self._probe.assign(
            [TopicPartition(self.topic, p, offset if offset >= 0 else OFFSET_BEGINNING) for p, offset in behind.items()]
        )
        try:
            deadline = time.monotonic() + timeout_s
            while behind and time.monotonic() < deadline:
                for msg in self._probe.consume(100, 0.5):
                    p, offset = msg.partition(), msg.offset()
                    if p is None or p not in behind:
                        continue
                    error = msg.error()
                    if error is not None and error.code() != KafkaError._PARTITION_EOF:
                        continue
                    if error is None and offset is not None and offset < self.marks[p]:
                        return False
                    del behind[p]
            return not behind
        finally:
            self._probe.unassign()

    def close(self) -> None:
        self._probe.close()
