"""Topic creation: the stack and the tests pre-create every topic with the partitions services expect."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from services.common.messages import COMPACTED_TOPICS, RETENTION_MS, TOPIC_MODELS
from services.common.settings import CommonSettings

log = logging.getLogger(__name__)

_TOPIC_CONFIG = {"max.message.bytes": str(8 * 1024 * 1024)}
_COMPACTED = {**_TOPIC_CONFIG, "cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}


def _config(topic: str) -> dict[str, str]:
    if topic not in COMPACTED_TOPICS:
        return _TOPIC_CONFIG
    if topic in RETENTION_MS:
        return {**_COMPACTED, "cleanup.policy": "compact,delete", "retention.ms": str(RETENTION_MS[topic])}
    return _COMPACTED


def ensure_topics(settings: CommonSettings, timeout_s: float = 30.0, extra: tuple[str, ...] = ()) -> list[str]:
    """Create missing topics (ours, and `extra` ones other systems write to); returns the names it created."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [
        NewTopic(
            name,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            config=_config(name),
        )
        for name in [*TOPIC_MODELS, *extra]
        if name not in existing
    ]
    if not wanted:
        return []
    for name, future in admin.create_topics(wanted, operation_timeout=timeout_s).items():
        try:
            future.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
        log.info("created topic", extra={"topic": name})
    return [t.topic for t in wanted]
