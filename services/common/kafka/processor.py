"""Consume-transform-produce in Kafka transactions, the loop behind every confluent-kafka stage.

Each consumed batch is handled, its outputs (and dead letters) produced, and its offsets sent to the same
transaction, so a crash either publishes everything a batch caused together with its offsets, or nothing.
Side effects outside Kafka (Milvus upserts) happen before the commit and must be idempotent: a replay
after a crash repeats them (at-least-once).

Every failure of a message is classified (`services.common.errors`):
- `TransientError`: the batch is rewound and retried with backoff; after `max_attempts` its messages are
  dead-lettered with the attempt history. Attempts made while the stage's dependencies report themselves
  down (Triton's models not ready, Milvus's collections not loadable) are not counted: an outage is waited
  out with readiness false, not turned into dead letters; a message that keeps failing while its
  dependencies are up is;
- any other exception: the batch is split and each message handled alone, so the one that fails is
  dead-lettered at once (its `reason`, or `internal_error` with the exception type) and the others go on.

Kafka itself failing is handled apart from messages: an abortable transaction is aborted and the batch
replayed; a fatal producer or consumer error (fenced after a broker restart) rebuilds both clients, which
rejoin the group and resume from the committed offsets. A call that never returns (librdkafka can hang in
`send_offsets_to_transaction` across a broker restart) is caught by a watchdog that fails liveness and
exits the process, so the supervisor restarts it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, NoReturn, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import Message as KafkaMessage
from opentelemetry import trace
from pydantic import BaseModel, ValidationError

from services.common.errors import ClipstreamError, TransientError
from services.common.kafka.codec import CONTENT_TYPE, decode, encode
from services.common.kafka.config import consumer_config, producer_config
from services.common.kafka.lag import LAG_EVERY_MS, ConsumerLag
from services.common.messages import TOPIC_MODELS, DeadLetter, Topics, event_id_of, is_backfill
from services.common.retry import RetryPolicy
from services.common.settings import CommonSettings, StageSettings
from services.common.telemetry import (
    BATCH_SECONDS,
    BATCH_SIZE,
    DEAD_LETTERS,
    HELD,
    MESSAGES_IN,
    MESSAGES_OUT,
    RETRIES,
    context_from_headers,
    headers_with_trace,
)

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
WATCHDOG_EXIT_CODE = 70


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
    unique: str | None = None  # a transaction carries at most one message per (topic, unique)


@dataclass(frozen=True)
class Rejected:
    """A message this stage will never be able to process: it goes to the dead-letter topic."""

    raw: KafkaMessage
    reason: str
    detail: str
    attempts: tuple[str, ...] = ()


Result = Outgoing | Rejected
Handler = Callable[[list[Received[M]]], Sequence[Result]]


@dataclass
class ProcessorConfig:
    service: str
    group_id: str
    input_topic: str
    more_topics: tuple[str, ...] = ()  # consumed by the same group; `model` then maps each topic to its model
    max_batch: int = 1
    max_wait_s: float = 0.1
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    kafka_timeout_s: float = 30.0
    handle_timeout_s: float = 600.0  # one handler call longer than this means the stage is stuck
    consumer_overrides: dict[str, object] = field(default_factory=dict)
    # called with the batch's outputs once its transaction committed (e.g. freshness: counted once)
    on_committed: Callable[[list[Outgoing]], None] | None = None
    dead_letter_topic: str = Topics.DEAD_LETTER
    # while this says True the group's partitions are paused (still a member, nothing fetched): a backfill
    # gives way to fresh uploads
    hold: Callable[[], bool] | None = None
    max_hold_s: float = 30.0  # held this long, the consumer takes one batch anyway (`held`)

    def __post_init__(self) -> None:
        # a handler call may legitimately take up to handle_timeout_s without polling: keep group membership
        poll_ms = int((self.handle_timeout_s + 2 * self.kafka_timeout_s + 60) * 1000)
        self.consumer_overrides.setdefault("max.poll.interval.ms", max(300_000, poll_ms))


def backfill_config(fresh: TransactionalProcessor[Any], input_topic: str, stage: StageSettings) -> ProcessorConfig:
    """A stage's backfill consumer (`clipstream reindex`): its fresh consumer's settings on the backfill's topic and
    group, dead letters apart (the upload's status stands), no freshness, held while the fresh one had work within
    the stage's `backfill_quiet_s`."""
    quiet_s = stage.backfill_quiet_s
    return dataclasses.replace(
        fresh.config,
        service=f"{fresh.config.service}-backfill",
        group_id=stage.backfill_group_id,
        input_topic=input_topic,
        more_topics=(),
        consumer_overrides=dict(fresh.config.consumer_overrides),
        on_committed=None,
        dead_letter_topic=Topics.BACKFILL_DEAD_LETTER,
        hold=lambda: fresh.active(quiet_s),
        max_hold_s=stage.backfill_max_hold_s,
    )


def dead_letter_topic(config: ProcessorConfig, payload: bytes | None) -> str:
    """A backfill's event goes to the backfill's dead letters wherever it was consumed (after a reindex's switch the
    indexer reads backfills among the uploads): the upload's status, projected from `videos.deadletter`, stands."""
    event_id = event_id_of(payload)
    return Topics.BACKFILL_DEAD_LETTER if event_id and is_backfill(event_id) else config.dead_letter_topic


def held(busy: bool, held_since: float | None, now: float, max_hold_s: float) -> tuple[bool, float | None]:
    """(hold now, since when): held while the fresh input is busy, but never longer than `max_hold_s` in a row:
    then one round goes through, and the clock starts again when a batch was taken (`took_batch`). Fresh input
    busy every few seconds would otherwise stall a reindex for ever."""
    if not busy:
        return False, None
    since = now if held_since is None else held_since
    return now - since < max_hold_s, since


def _key(m: KafkaMessage) -> tuple[str, int, int]:
    return (m.topic() or "", m.partition() or 0, m.offset() or 0)


class TransactionalProcessor(Generic[M]):
    def __init__(
        self,
        settings: CommonSettings,
        config: ProcessorConfig,
        model: type[M] | Mapping[str, type[Any]],
        handle: Handler[M],
        dependencies_ready: Callable[[], bool] | None = None,
    ) -> None:
        self.config = config
        self._settings = settings
        self._model = model
        self._handle = handle
        self._dependencies_ready = dependencies_ready
        self._tracer = trace.get_tracer(f"clipstream.{config.service}")
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._started = threading.Event()
        self._degraded = False  # the last batch failed transiently: a dependency is down
        self._busy_since: float | None = None  # when the current blocking step began
        self._busy_limit = 0.0
        self._busy_what = ""
        self._backoff_s = 0.0
        self._history: dict[tuple[str, int, int], list[str]] = {}
        self._lag = ConsumerLag(config.service)
        self._last_input = float("-inf")  # when a batch last arrived or finished
        self._in_batch = False
        self._holding = False
        self._held_since: float | None = None  # when the current hold began (see `held`)

    @classmethod
    def for_topics(
        cls,
        settings: CommonSettings,
        config: ProcessorConfig,
        handle: Handler[M],
        dependencies_ready: Callable[[], bool] | None = None,
    ) -> TransactionalProcessor[M]:
        """A stage consuming our own topics: each is read with the model `TOPIC_MODELS` states for it."""
        topics = (config.input_topic, *config.more_topics)
        models: Mapping[str, type[Any]] = {topic: TOPIC_MODELS[topic] for topic in topics}
        return cls(settings, config, models, handle, dependencies_ready)

    # --- health -----------------------------------------------------------------------------------------

    def live(self) -> bool:
        """False once a blocking step (a Kafka call, a handler) has run past its limit: restart us."""
        since = self._busy_since
        return since is None or time.monotonic() - since <= self._busy_limit

    def active(self, quiet_s: float) -> bool:
        """Whether this replica is handling a batch or was within the last `quiet_s` (its partitions have work)."""
        return self._in_batch or time.monotonic() - self._last_input < quiet_s

    def ready(self) -> bool:
        if not (self._started.is_set() and self.live()) or self._degraded:
            return False
        return self._dependencies_ready() if self._dependencies_ready is not None else True

    def _watch(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            if not self.live():
                # the stuck thread is inside librdkafka: nothing else gets out
                self._exit(
                    "stuck: exiting so the supervisor restarts us", step=self._busy_what, limit_s=self._busy_limit
                )

    @staticmethod
    def _exit(message: str, **extra: object) -> NoReturn:
        """Leave as a new process would be started: clients rebuilt in this process after a fatal error were
        seen to stay out of their group, ready and idle, after a broker pause (a fresh process rejoins). The
        open transaction is aborted by the broker; the group resumes from the committed offsets."""
        log.critical(message, extra=extra)
        logging.shutdown()
        os._exit(WATCHDOG_EXIT_CODE)

    def _busy(self, what: str, limit_s: float) -> None:
        self._busy_what, self._busy_limit, self._busy_since = what, limit_s, time.monotonic()

    def _idle(self) -> None:
        self._busy_since = None

    def _kafka_limit(self) -> float:
        """A Kafka call given `timeout` that has not returned by this is stuck (librdkafka 5456/5511)."""
        return self.config.kafka_timeout_s * 1.5 + 5

    # --- clients ----------------------------------------------------------------------------------------

    def _connect(self, stop: threading.Event) -> None:
        """Fresh clients: a new transactional id, the group joined from its committed offsets."""
        while not stop.is_set():
            transactional_id = f"{self.config.group_id}-{uuid.uuid4().hex[:12]}"
            producer = Producer(producer_config(self._settings, transactional_id))
            try:
                self._busy("init_transactions", self._kafka_limit())
                producer.init_transactions(self.config.kafka_timeout_s)
            except KafkaException as exc:
                log.warning("init_transactions failed, retrying", extra={"error": str(exc)})
                self._sleep(stop)
                continue
            finally:
                self._idle()
            self._producer = producer
            consumer = Consumer(
                consumer_config(
                    self._settings,
                    self.config.group_id,
                    **{"statistics.interval.ms": LAG_EVERY_MS, "stats_cb": self._lag.update},
                    **self.config.consumer_overrides,
                )
            )
            consumer.subscribe([self.config.input_topic, *self.config.more_topics])
            self._consumer = consumer
            self._backoff_s = 0.0
            return

    def _close_clients(self) -> None:
        self._busy("close", self._kafka_limit())
        try:
            if self._consumer is not None:
                try:
                    self._consumer.close()
                except (KafkaException, RuntimeError) as exc:
                    log.info("consumer close failed", extra={"error": str(exc)})
                self._consumer = None
            if self._producer is not None:
                self._producer.flush(5)
                self._producer = None
        finally:
            self._idle()

    def run(self, stop: threading.Event) -> None:
        threading.Thread(target=self._watch, args=(stop,), name="watchdog", daemon=True).start()
        self._connect(stop)
        if stop.is_set():
            return
        self._started.set()
        log.info("consuming", extra={"topic": self.config.input_topic, "group": self.config.group_id})
        try:
            while not stop.is_set():
                assert self._consumer is not None
                self._pause_while_held()
                msgs = self._consumer.consume(self.config.max_batch, self.config.max_wait_s)
                try:
                    live = [m for m in msgs if not self._is_error(m)]
                    if live:
                        self._in_batch = True
                        try:
                            self._process(live, stop)
                            if self._held_since is not None:  # a batch went through a hold: the clock restarts
                                self._held_since = time.monotonic()
                        finally:
                            self._last_input = time.monotonic()  # before the flag: never quiet between
                            self._in_batch = False
                except _Reconnect as exc:
                    self._exit("fatal Kafka error: exiting so the supervisor restarts us", error=str(exc))
        finally:
            self._started.clear()
            self._close_clients()

    def _pause_while_held(self) -> None:
        """Pause every assigned partition while `hold` says so, resume them all when it does not, every round: a
        rebalance may assign partitions in either state, and a pause must never outlive the hold. A paused
        partition returns nothing and loses nothing: its fetch position stays where consumption stopped."""
        if self.config.hold is None:
            return
        assert self._consumer is not None
        holding, self._held_since = held(self.config.hold(), self._held_since, time.monotonic(), self.config.max_hold_s)
        assignment = self._consumer.assignment()
        if assignment:
            (self._consumer.pause if holding else self._consumer.resume)(assignment)
        if holding != self._holding:
            HELD.labels(self.config.service).set(int(holding))
            self._holding = holding

    def _is_error(self, msg: KafkaMessage) -> bool:
        err = msg.error()
        if err is None:
            return False
        if err.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error", extra={"error": str(err)})
            if err.fatal():
                raise _Reconnect(str(err))
        return True

    # --- one batch --------------------------------------------------------------------------------------

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
            span.set_attributes(
                {
                    "messaging.system": "kafka",
                    "messaging.destination.name": m.topic() or "",
                    "messaging.kafka.destination.partition": m.partition() or 0,
                    "messaging.kafka.message.offset": m.offset() or 0,
                    "messaging.kafka.message.key": (m.key() or b"").decode(errors="replace"),
                }
            )
            try:
                model = self._model[m.topic() or ""] if isinstance(self._model, Mapping) else self._model
                value = decode(m.value(), model)
                event_id = getattr(value, "event_id", None)
                if isinstance(event_id, str):
                    span.set_attribute("clipstream.event_id", event_id)
                batch.append(Received(value, m, span))
            except (ValidationError, ValueError) as exc:
                span.end()
                results.append(Rejected(m, "malformed_message", str(exc)))
        try:
            if batch:
                results.extend(self._handle_classified(batch))
        except TransientError as exc:
            self._end_spans(batch, exc)
            # while a dependency is known to be down the failure is the outage's, not the messages': wait
            # for it (not ready meanwhile) without spending their attempts
            outage = self._dependencies_ready is not None and not self._dependencies_ready()
            if outage or not self._note_attempt(msgs, exc):
                self._retry_later(msgs, exc, stop)
                return
            results += self._give_up([r.raw for r in batch], exc)  # malformed ones keep their own reason
        try:
            self._commit(msgs, results)
        except _Replay as exc:
            log.warning("transaction aborted, replaying the batch", extra={"error": str(exc)})
            self._rewind(msgs)
            return
        finally:
            self._end_spans(batch)
        if self.config.on_committed is not None:
            self.config.on_committed([r for r in results if isinstance(r, Outgoing)])
        for m in msgs:
            self._history.pop(_key(m), None)
        self._degraded = False
        self._backoff_s = 0.0
        BATCH_SECONDS.labels(service).observe(time.perf_counter() - start)
        BATCH_SIZE.labels(service).observe(len(msgs))

    def _handle_classified(self, batch: list[Received[M]]) -> list[Result]:
        """The handler's results; a non-transient failure is pinned on the message(s) that cause it."""
        try:
            return list(self._call(batch))
        except TransientError:
            raise
        except Exception as exc:
            if len(batch) == 1:
                return [self._rejection(batch[0].raw, exc)]
            log.warning("batch failed: handling its messages one by one", extra={"error": repr(exc)[:500]})
        results: list[Result] = []
        for received in batch:
            try:
                results.extend(self._call([received]))
            except TransientError:
                raise
            except Exception as exc:
                results.append(self._rejection(received.raw, exc))
        return results

    def _call(self, batch: list[Received[M]]) -> Sequence[Result]:
        self._busy("handler", self.config.handle_timeout_s)
        try:
            return self._handle(batch)
        finally:
            self._idle()

    @staticmethod
    def _rejection(raw: KafkaMessage, exc: Exception) -> Rejected:
        if isinstance(exc, ClipstreamError):
            return Rejected(raw, exc.reason, exc.detail)
        log.exception("unexpected error for one message", exc_info=exc)
        return Rejected(raw, "internal_error", f"{type(exc).__name__}: {exc}")

    def _note_attempt(self, msgs: list[KafkaMessage], exc: TransientError) -> bool:
        """Record a failed attempt on every message of the batch; whether any has used up its attempts."""
        note = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {exc.reason}: {exc.detail[:300]}"
        exhausted = False
        for m in msgs:
            history = self._history.setdefault(_key(m), [])
            history.append(note)
            exhausted |= len(history) >= self.config.retry.max_attempts
        return exhausted

    def _give_up(self, msgs: list[KafkaMessage], exc: TransientError) -> list[Result]:
        log.error("retries exhausted: dead-lettering the batch", extra={"messages": len(msgs), "reason": exc.reason})
        return [
            Rejected(
                m,
                exc.reason,
                f"gave up after {len(self._history.get(_key(m), []))} attempts: {exc.detail}",
                tuple(self._history.get(_key(m), [])),
            )
            for m in msgs
        ]

    @staticmethod
    def _end_spans(batch: list[Received[M]], exc: Exception | None = None) -> None:
        for r in batch:
            if not r.span.is_recording():
                continue
            if exc is not None:
                r.span.record_exception(exc)
            r.span.end()

    # --- the transaction --------------------------------------------------------------------------------

    def _commit(self, msgs: list[KafkaMessage], results: Sequence[Result]) -> None:
        producer, consumer, timeout = self._producer, self._consumer, self.config.kafka_timeout_s
        assert producer is not None and consumer is not None
        try:
            self._busy("begin_transaction", self._kafka_limit())
            producer.begin_transaction()
            sent: set[tuple[str, str]] = set()
            for result in results:
                out = self._dead_letter(result) if isinstance(result, Rejected) else result
                if out.unique is not None:
                    if (out.topic, out.unique) in sent:
                        continue  # e.g. a completion seen again when a failed batch is handled one by one
                    sent.add((out.topic, out.unique))
                ctx = trace.set_span_in_context(out.source.span) if out.source else None
                producer.produce(
                    out.topic,
                    key=out.key.encode(),
                    value=encode(out.message),
                    headers=[CONTENT_TYPE, *headers_with_trace(ctx)],
                )
                MESSAGES_OUT.labels(self.config.service, out.topic).inc()
            self._busy("send_offsets_to_transaction", self._kafka_limit())
            producer.send_offsets_to_transaction(_next_offsets(msgs), consumer.consumer_group_metadata(), timeout)
            self._commit_transaction(producer, timeout)
        except KafkaException as exc:
            self._fail_transaction(producer, exc)
        except BufferError as exc:  # the local queue is full: nothing was committed
            self._abort(producer)
            raise _Replay(str(exc)) from exc
        finally:
            self._idle()

    def _commit_transaction(self, producer: Producer, timeout: float) -> None:
        attempts = self.config.retry.commit_attempts
        for attempt in range(attempts):
            self._busy("commit_transaction", self._kafka_limit())
            try:
                producer.commit_transaction(timeout)
                return
            except KafkaException as exc:
                error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                if error is None or not error.retriable() or attempt == attempts - 1:
                    raise
                log.warning("commit retriable, retrying", extra={"error": str(exc)})

    def _fail_transaction(self, producer: Producer, exc: KafkaException) -> None:
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if error is not None and error.txn_requires_abort():
            self._abort(producer)
            raise _Replay(str(exc)) from exc
        raise _Reconnect(str(exc)) from exc  # fatal (fenced) or unknown: a new process, resumed from commits

    def _abort(self, producer: Producer) -> None:
        self._busy("abort_transaction", self._kafka_limit())
        try:
            producer.abort_transaction(self.config.kafka_timeout_s)
        except KafkaException as exc:
            raise _Reconnect(f"abort failed: {exc}") from exc

    def _dead_letter(self, rejected: Rejected) -> Outgoing:
        raw = rejected.raw
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
            self.config.service, rejected.reason, rejected.detail, _key(raw), raw.key(), raw.value(), rejected.attempts
        )
        return Outgoing(dead_letter_topic(self.config, raw.value()), letter, key=letter.key or "")

    # --- retries ----------------------------------------------------------------------------------------

    def _retry_later(self, msgs: list[KafkaMessage], exc: TransientError, stop: threading.Event) -> None:
        RETRIES.labels(self.config.service).inc()
        self._degraded = True
        log.warning("transient failure, will retry", extra={"error": str(exc)[:500]})
        self._rewind(msgs)
        self._sleep(stop)

    def _sleep(self, stop: threading.Event) -> None:
        retry = self.config.retry
        self._backoff_s = min(max(self._backoff_s * 2, retry.backoff_initial_s), retry.backoff_max_s)
        stop.wait(self._backoff_s)

    def _rewind(self, msgs: list[KafkaMessage]) -> None:
        """Seek back to the first message of the batch on each partition so it is consumed again."""
        assert self._consumer is not None
        for tp in _first_offsets(msgs):
            try:
                self._consumer.seek(tp)
            except KafkaException as exc:  # partition revoked meanwhile: its new owner replays it
                log.info("seek skipped", extra={"partition": tp.partition, "error": str(exc)})


class _Replay(Exception):
    """The transaction was aborted: nothing of the batch is visible; consume it again."""


class _Reconnect(Exception):
    """The clients are unusable (fenced, fatal): the process exits; its successor resumes from the commits."""


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
