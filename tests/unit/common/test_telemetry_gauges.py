"""The gauges operators alert on: consumer lag from librdkafka statistics, readiness read at each scrape."""

from __future__ import annotations

import json

from prometheus_client import REGISTRY

from services.common.kafka.lag import ConsumerLag


def _stats(partitions: dict[str, int]) -> str:
    parts: dict[str, dict[str, int]] = {"-1": {"consumer_lag_stored": -1}}
    parts |= {p: {"consumer_lag_stored": lag, "consumer_lag": 999} for p, lag in partitions.items()}
    return json.dumps({"name": "rdkafka#consumer-1", "topics": {"videos.segments": {"partitions": parts}}})


def _lag(partition: str) -> float | None:
    return REGISTRY.get_sample_value(
        "clipstream_consumer_lag", {"service": "lag-test", "topic": "videos.segments", "partition": partition}
    )


def test_lag_follows_the_assignment() -> None:
    lag = ConsumerLag("lag-test")
    lag.update(_stats({"0": 12, "1": 0, "2": -1}))
    assert (_lag("0"), _lag("1"), _lag("2"), _lag("-1")) == (12.0, 0.0, None, None)
    lag.update(_stats({"1": 5}))  # partition 0 was revoked
    assert (_lag("0"), _lag("1")) == (None, 5.0)


def test_a_readiness_check_that_raises_reads_as_not_ready() -> None:
    from services.common.telemetry import export_readiness

    def unreachable() -> bool:
        raise ConnectionError("milvus is down")

    export_readiness("ready-test", unreachable)
    assert REGISTRY.get_sample_value("clipstream_ready", {"service": "ready-test"}) == 0.0
    export_readiness("ready-test", lambda: True)
    assert REGISTRY.get_sample_value("clipstream_ready", {"service": "ready-test"}) == 1.0
