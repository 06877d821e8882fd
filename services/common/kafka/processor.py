"""Consume-transform-produce in Kafka transactions, the loop behind every confluent-kafka stage.

Each consumed batch is handled, its outputs (and dead letters) produced, and its offsets sent to the same
transaction, so a crash either publishes everything a batch caused together with its offsets, or nothing.
Side effects outside Kafka (Milvus upserts) happen before the commit and must be idempotent: a replay
after a crash repeats them (at-least-once).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import Message as KafkaMessage
from opentelemetry import trace
from pydantic import BaseModel, ValidationError

from services.common.errors import TransientError
from services.common.kafka.codec import CONTENT_TYPE, decode, encode
from services.common.kafka.config import consumer_config, producer_config
from services.common.messages import DeadLetter, Topics
from services.common.settings import CommonSettings
from services.common.telemetry import (
    BATCH_SECONDS,
    BATCH_SIZE,
    DEAD_LETTERS,
    MESSAGES_IN,
    MESSAGES_OUT,
    RETRIES,
    context_from_headers,
    headers_with_trace,
)

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Received(Generic[M]):
    value: M
    raw: KafkaMessage
    span: trace.Span


@dataclass(frozen=True)
class Outgoing:
    topic: str
    message: BaseModel
    key: str
    source: Received[Any] | None = None


@dataclass(frozen=True)
class Rejected:
    """A message this stage will never be able to process: it goes to the dead-letter topic."""

    raw: KafkaMessage
    reason: str
    detail: str


Result = Outgoing | Rejected
Handler = Callable[[list[Received[M]]], Sequence[Result]]


@dataclass
class ProcessorConfig:
    service: str
    group_id: str
    input_topic: str
    max_batch: int = 1
    max_wait_s: float = 0.1
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    consumer_overrides: dict[str, object] = field(default_factory=dict)


class TransactionalProcessor(Generic[M]):
    def __init__(self, settings: CommonSettings, config: ProcessorConfig, model: type[M], handle: Handler[M]) -> None:
        self.config = config
        self._model = model
        self._handle = handle
        self._tracer = trace.get_tracer(f"clipstream.{config.service}")
        self._consumer = Consumer(consumer_config(settings, config.group_id, **config.consumer_overrides))
        transactional_id = f"{config.group_id}-{uuid.uuid4().hex[:12]}"
        self._producer = Producer(producer_config(settings, transactional_id))
        self._ready = threading.Event()
        self._backoff_s = 0.0

    def ready(self) -> bool:
        return self._ready.is_set()

    def run(self, stop: threading.Event) -> None:
        self._producer.init_transactions(30)
        self._consumer.subscribe([self.config.input_topic])
        self._ready.set()
        log.info("consuming", extra={"topic": self.config.input_topic, "group": self.config.group_id})
        try:
            while not stop.is_set():
                msgs = self._consumer.consume(self.config.max_batch, self.config.max_wait_s)
                live = [m for m in msgs if not self._is_error(m)]
                if live:
                    self._process(live, stop)
        finally:
            self._ready.clear()
            self._consumer.close()
            self._producer.flush(10)

    def _is_error(self, msg: KafkaMessage) -> bool:
        err = msg.error()
        if err is None:
            return False
        if err.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error", extra={"error": str(err)})
            if err.fatal():
                raise KafkaException(err)
        return True

    def _process(self, msgs: list[KafkaMessage], stop: threading.Event) -> None:
        start = time.perf_counter()
        service = self.config.service
        batch: list[Received[M]] = []
        results: list[Result] = []
        for m in msgs:
            MESSAGES_IN.labels(service, m.topic()).inc()
            span = self._tracer.start_span(
                f"{service} process", context=context_from_headers(m.headers()), kind=trace.SpanKind.CONSUMER
            )
            try:
                batch.append(Received(decode(m.value(), self._model), m, span))
            except (ValidationError, ValueError) as exc:
                span.end()
                results.append(Rejected(m, "malformed_message", str(exc)[:2000]))
        try:
            if batch:
                results.extend(self._handle(batch))
        except TransientError as exc:
            self._retry_later(msgs, batch, exc)
            return
        try:
            self._commit(msgs, results)
        except KafkaException as exc:
            self._abort(msgs, batch, exc)
            return
        finally:
            for r in batch:
                r.span.end()
        self._backoff_s = 0.0
        BATCH_SECONDS.labels(service).observe(time.perf_counter() - start)
        BATCH_SIZE.labels(service).observe(len(msgs))

    def _commit(self, msgs: list[KafkaMessage], results: Sequence[Result]) -> None:
        self._producer.begin_transaction()
        for result in results:
            out = self._dead_letter(result) if isinstance(result, Rejected) else result
            ctx = trace.set_span_in_context(out.source.span) if out.source else None
            self._producer.produce(
                out.topic,
                key=out.key.encode(),
                value=encode(out.message),
                headers=[CONTENT_TYPE, *headers_with_trace(ctx)],
            )
            MESSAGES_OUT.labels(self.config.service, out.topic).inc()
        self._producer.send_offsets_to_transaction(_next_offsets(msgs), self._consumer.consumer_group_metadata(), 30)
        self._producer.commit_transaction(30)

    def _dead_letter(self, rejected: Rejected) -> Outgoing:
        raw = rejected.raw
        key = raw.key()
        DEAD_LETTERS.labels(self.config.service, rejected.reason).inc()
        log.warning(
            "dead letter",
            extra={
                "reason": rejected.reason,
                "detail": rejected.detail[:500],
                "topic": raw.topic(),
                "partition": raw.partition(),
                "offset": raw.offset(),
            },
        )
        letter = DeadLetter.of(
            self.config.service,
            rejected.reason,
            rejected.detail,
            (raw.topic() or "", raw.partition() or 0, raw.offset() or 0),
            key,
            raw.value(),
        )
        return Outgoing(Topics.DEAD_LETTER, letter, key=letter.key or "")

    def _retry_later(self, msgs: list[KafkaMessage], batch: list[Received[M]], exc: Exception) -> None:
        RETRIES.labels(self.config.service).inc()
        self._backoff_s = min(max(self._backoff_s * 2, self.config.backoff_initial_s), self.config.backoff_max_s)
        log.warning("transient failure, will retry", extra={"error": str(exc)[:500], "backoff_s": self._backoff_s})
        for r in batch:
            r.span.record_exception(exc)
            r.span.end()
        self._rewind(msgs)
        time.sleep(self._backoff_s)

    def _abort(self, msgs: list[KafkaMessage], batch: list[Received[M]], exc: KafkaException) -> None:
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        log.error("transaction failed", extra={"error": str(exc)})
        if error is not None and error.fatal():
            raise exc  # fenced or otherwise unrecoverable: let the orchestrator restart us
        try:
            self._producer.abort_transaction(30)
        except KafkaException:
            log.exception("abort failed")
        self._rewind(msgs)

    def _rewind(self, msgs: list[KafkaMessage]) -> None:
        """Seek back to the first message of the batch on each partition so it is consumed again."""
        for tp in _first_offsets(msgs):
            try:
                self._consumer.seek(tp)
            except KafkaException as exc:  # partition revoked meanwhile: its new owner replays it
                log.info("seek skipped", extra={"partition": tp.partition, "error": str(exc)})


def _next_offsets(msgs: list[KafkaMessage]) -> list[TopicPartition]:
    last: dict[tuple[str, int], int] = {}
    for m in msgs:
        key = (m.topic() or "", m.partition() or 0)
        last[key] = max(last.get(key, -1), m.offset() or 0)
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


def _first_offsets(msgs: list[KafkaMessage]) -> list[TopicPartition]:
    first: dict[tuple[str, int], int] = {}
    for m in msgs:
        key = (m.topic() or "", m.partition() or 0)
        first[key] = min(first.get(key, m.offset() or 0), m.offset() or 0)
    return [TopicPartition(t, p, o) for (t, p), o in first.items()]
