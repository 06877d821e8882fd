"""Consumer lag as a Prometheus gauge, read from librdkafka's own statistics: no extra broker requests, and
what a lag alert needs from every replica of every stage (its assigned partitions only)."""

from __future__ import annotations

import json

from prometheus_client import Gauge

LAG = Gauge(
    "clipstream_consumer_lag",
    "Messages of an assigned partition not yet consumed (high watermark minus the next offset to consume)",
    ["service", "topic", "partition"],
)
LAG_EVERY_MS = 10_000


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
