"""Idempotent, non-transactional publishing for edges that start a flow (ingest CLI, gateway)."""

from __future__ import annotations

from confluent_kafka import KafkaException, Producer
from opentelemetry import trace

from services.common.kafka.codec import CONTENT_TYPE, encode
from services.common.kafka.config import producer_config
from services.common.messages import Message
from services.common.settings import CommonSettings
from services.common.telemetry import MESSAGES_OUT, headers_with_trace


class Publisher:
    def __init__(self, settings: CommonSettings, service: str) -> None:
        self._producer = Producer(producer_config(settings))
        self._service = service
        self._errors: list[str] = []
        self._tracer = trace.get_tracer(f"clipstream.{service}")

    def publish(self, topic: str, message: Message) -> None:
        def on_delivery(err: object, _msg: object) -> None:
            if err is not None:
                self._errors.append(str(err))

        # the root of the flow's trace (or a child of the caller's span): every stage's span descends from it
        with self._tracer.start_as_current_span(f"{self._service} publish", kind=trace.SpanKind.PRODUCER) as span:
            span.set_attributes(
                {
                    "messaging.system": "kafka",
                    "messaging.destination.name": topic,
                    "messaging.kafka.message.key": message.video_id,
                    "clipstream.event_id": message.event_id,
                }
            )
            self._producer.produce(
                topic,
                key=message.video_id.encode(),
                value=encode(message),
                headers=[CONTENT_TYPE, *headers_with_trace()],
                on_delivery=on_delivery,
            )
        self._producer.poll(0)
        MESSAGES_OUT.labels(self._service, topic).inc()

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until every message is acknowledged; raise if any was not. A long-lived publisher (the
        gateway) stays usable after a failure: messages still queued are dropped, so the caller's error
        answer means "not published" for them (one already in flight may yet land: callers make retries
        safe with idempotent event ids), and earlier errors are not reported again."""
        remaining = self._producer.flush(timeout_s)
        errors, self._errors = self._errors, []
        if remaining:
            self._producer.purge(in_queue=True, in_flight=False)
            self._producer.poll(0)  # deliver the purge reports now, not into the next flush
            self._errors.clear()
        if remaining or errors:
            raise KafkaException(f"{remaining} undelivered, errors: {errors[:3]}")

    def close(self) -> None:
        """Release the client (and stop its reconnect attempts): what is still queued is dropped."""
        self._producer.purge()
        self._producer.close()
