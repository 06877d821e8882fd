"""Idempotent, non-transactional publishing for edges that start a flow (gateway, ingest CLI, search's cache).

Every message gets its own delivery future, resolved by librdkafka's delivery report for that message alone:
a request waits for its own message and answers from its own outcome, never from a shared flush (which
would report another request's error, or purge another request's message). A message whose wait times out
is left queued: it may still land (within `message.timeout.ms`), which callers make safe with event ids
of their own (an answer of 503 means "maybe", a 202 means "it is in Kafka").
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from opentelemetry import trace

from services.common.errors import TransientError
from services.common.kafka.codec import CONTENT_TYPE, encode
from services.common.kafka.config import producer_config
from services.common.messages import Message
from services.common.settings import CommonSettings
from services.common.telemetry import MESSAGES_OUT, headers_with_trace


class NotDelivered(TransientError):
    """Kafka did not take the message. `maybe`: it may still land (no report in time, or an unknown end to a
    transaction); otherwise it is certain it never will, so what was prepared for it can be undone."""

    reason = "kafka_unavailable"

    def __init__(self, detail: str, maybe: bool = False) -> None:
        super().__init__(detail)
        self.maybe = maybe


Delivery = Future  # resolves to (partition, offset), or raises NotDelivered


class Publisher:
    def __init__(self, settings: CommonSettings, service: str, **overrides: Any) -> None:
        self._producer = Producer(producer_config(settings, **overrides))
        self._service = service
        self._tracer = trace.get_tracer(f"clipstream.{service}")
        # delivery reports are served by poll(): one thread serves every waiting request's report
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._serve_reports, name=f"{service}-delivery", daemon=True)
        self._poller.start()

    def _serve_reports(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.1)

    def publish(self, topic: str, message: Message, partition: int | None = None) -> Delivery:
        """Queue the message; the returned future is this message's delivery report."""
        delivery: Delivery = Future()

        def on_delivery(err: KafkaError | None, msg: object) -> None:
            if err is not None:
                delivery.set_exception(NotDelivered(f"{topic}: {err.str()}"))
            else:
                delivery.set_result((msg.partition(), msg.offset()))  # type: ignore[attr-defined]

        try:
            produce_traced(
                self._producer, self._tracer, self._service, topic, message, on_delivery, partition=partition
            )
        except (BufferError, KafkaException) as exc:  # the local queue is full: the broker has been away
            raise NotDelivered(f"{topic}: not queued: {exc}") from exc
        MESSAGES_OUT.labels(self._service, topic).inc()
        return delivery

    def wait(self, delivery: Delivery, timeout_s: float) -> tuple[int, int]:
        """This message's outcome: its (partition, offset), or NotDelivered (failed, or no report in time)."""
        try:
            return delivery.result(timeout=timeout_s)
        except FutureTimeout as exc:
            raise NotDelivered(
                f"no delivery report within {timeout_s:g} s (the message may still land)", maybe=True
            ) from exc

    def deliver(self, topic: str, message: Message, timeout_s: float) -> tuple[int, int]:
        """Publish one message and wait for its own delivery report."""
        return self.wait(self.publish(topic, message), timeout_s)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait for every queued message (batch publishers: the CLI); raise if any is still undelivered."""
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise NotDelivered(f"{remaining} messages undelivered after {timeout_s:g} s", maybe=True)

    def close(self) -> None:
        """Release the client (and stop its reconnect attempts): what is still queued is dropped."""
        self._closed.set()
        self._poller.join(5)
        self._producer.purge()
        self._producer.poll(0)
        self._producer.close()


def produce_traced(
    producer: Producer,
    tracer: trace.Tracer,
    service: str,
    topic: str,
    message: Message,
    on_delivery: Callable[[KafkaError | None, object], None] | None = None,
    key: str | None = None,
    partition: int | None = None,
) -> None:
    """Produce under a PRODUCER span, the root of the flow's trace (or a child of the caller's span): every
    stage's span descends from it through the message's `traceparent` header. Keyed by video id unless told."""
    with tracer.start_as_current_span(f"{service} publish", kind=trace.SpanKind.PRODUCER) as span:
        span.set_attributes(
            {
                "messaging.system": "kafka",
                "messaging.destination.name": topic,
                "messaging.kafka.message.key": key or message.video_id,
                "clipstream.event_id": message.event_id,
            }
        )
        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        if on_delivery is not None:
            extra["on_delivery"] = on_delivery
        producer.produce(
            topic,
            key=(key or message.video_id).encode(),
            value=encode(message),
            headers=[CONTENT_TYPE, *headers_with_trace()],
            **extra,
        )
