"""librdkafka configurations: the only place client settings are chosen."""

from __future__ import annotations

from typing import Any

from services.common.settings import CommonSettings


def consumer_config(settings: CommonSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        # Only see what upstream transactions committed: aborted work must never reach the next stage.
        "isolation.level": "read_committed",
        "session.timeout.ms": settings.kafka_session_timeout_ms,
        "partition.assignment.strategy": "cooperative-sticky",
        **overrides,
    }


def producer_config(settings: CommonSettings, transactional_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.max.bytes": 8 * 1024 * 1024,
    }
    if transactional_id:
        config["transactional.id"] = transactional_id
        config["transaction.timeout.ms"] = settings.kafka_transaction_timeout_ms
    config.update(overrides)
    return config
