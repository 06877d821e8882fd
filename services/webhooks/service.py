"""The dispatcher: its own consumer group on the outcome topics, fanning each outcome out to the endpoints of
its tenant that subscribed to its type, delivering with retries, committing what is finished.

At least once: a record's offset is committed only when every delivery it caused is finished (delivered, or
dead-lettered on `webhooks.deadletter` with its attempt history, or dropped because its endpoint was deleted),
per partition up to the lowest unfinished record (`watermark.py`). A crash therefore redelivers, with the same
`webhook-id`s. An endpoint receives the events recorded (Kafka timestamp) from its creation on: before each
batch whose records are newer than the last look, the endpoint table is synced with the topic's end, so an
endpoint whose registration was answered before an event was recorded is seen when that event is.

Memory is bounded twice: an endpoint holds at most `max_pending_per_endpoint` deliveries (beyond it a new
one is dead-lettered at once as `endpoint_backlog_full`, so a dead receiver costs only its own events), and
at `max_pending_records` unfinished records the consumer pauses its partitions until they drain to 80 %.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import Message as KafkaMessage
from opentelemetry import trace

from services.common.kafka.config import consumer_config, producer_config
from services.common.kafka.lag import LAG_EVERY_MS, ConsumerLag
from services.common.messages import DeadLetter, Topics, WebhookEndpoint
from services.common.telemetry import DEAD_LETTERS, MESSAGES_IN, MESSAGES_OUT, context_from_headers
from services.common.webhooks import EndpointTable, NotCaughtUp, SecretBox, record_key
from services.webhooks.delivery import DELIVERIES, Delivery, DeliveryEngine
from services.webhooks.events import TOPICS, event_of
from services.webhooks.settings import WebhooksSettings
from services.webhooks.watermark import Partition, Ticket, Watermarks

log = logging.getLogger(__name__)
SERVICE = "webhooks"
CLOCK_SKEW_MS = 1000  # between the hosts that stamp records and this one


class Dispatcher:
    def __init__(self, settings: WebhooksSettings, table: EndpointTable | None = None) -> None:
        self.settings = settings
        self._table = table or EndpointTable(settings.common, f"{SERVICE}-endpoints")
        self._box: SecretBox = settings.endpoints.cipher(settings.common)
        self._marks = Watermarks()
        self._engine = DeliveryEngine(settings, self._secret_of, self._finished, self._dead_letter)
        self._producer = Producer(producer_config(settings.common))
        self._tracer = trace.get_tracer(f"clipstream.{SERVICE}")
        self._lag = ConsumerLag(SERVICE)
        self._consumer: Consumer | None = None
        self._started = threading.Event()
        self._beat = time.monotonic()
        self._synced_at_ms = 0.0
        self._committed: dict[Partition, int] = {}
        self._paused = False

    # --- health -----------------------------------------------------------------------------------------

    def live(self) -> bool:
        stuck_after = 2 * self.settings.common.kafka_call_timeout_s + 30
        return time.monotonic() - self._beat < stuck_after and (not self._started.is_set() or self._engine.live())

    def ready(self) -> bool:
        return self._started.is_set() and self._table.ready() and self.live()

    # --- the loop ---------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self._table.start()
        self._engine.start()
        while not stop.is_set() and not self._table.wait_caught_up(1.0):  # never miss an existing endpoint
            self._beat = time.monotonic()
        consumer = Consumer(
            consumer_config(
                self.settings.common,
                self.settings.group_id,
                **{"statistics.interval.ms": LAG_EVERY_MS, "stats_cb": self._lag.update},
            )
        )
        consumer.subscribe(list(TOPICS), on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost)
        self._consumer = consumer
        self._started.set()
        log.info("consuming", extra={"topics": list(TOPICS), "group": self.settings.group_id})
        last_commit = last_reap = 0.0
        try:
            while not stop.is_set():
                self._beat = time.monotonic()
                records = [m for m in consumer.consume(self.settings.max_batch_messages, 0.2) if self._usable(m)]
                self._producer.poll(0)  # dead letters' delivery reports
                if records:
                    self._dispatch(records, stop)
                self._backpressure(consumer)
                now = time.monotonic()
                if now - last_commit >= self.settings.commit_interval_s:
                    self._commit(consumer)
                    last_commit = now
                if now - last_reap >= 5:
                    self._engine.reap(self._table.ids())
                    last_reap = now
        finally:
            self._started.clear()
            self._drain()
            self._commit(consumer)
            consumer.close()  # what is still pending stays uncommitted: the next owner delivers it
            self._engine.stop()
            self._producer.flush(5)
            self._table.stop()

    def _usable(self, message: KafkaMessage) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error", extra={"error": str(error)})
            if error.fatal():
                raise KafkaException(error)  # the process exits; the supervisor restarts it from the commits
        return False

    def _drain(self) -> None:
        """On shutdown, a few seconds for deliveries in flight, so fewer are sent again after the restart."""
        deadline = time.monotonic() + self.settings.shutdown_grace_s
        while self._marks.pending() and time.monotonic() < deadline:
            self._producer.poll(0.1)

    # --- fan-out ----------------------------------------------------------------------------------------

    def _dispatch(self, records: list[KafkaMessage], stop: threading.Event) -> None:
        newest = max(_timestamp_ms(m) for m in records)
        if newest >= self._synced_at_ms - CLOCK_SKEW_MS:
            self._sync_endpoints(stop)
        for m in records:
            self._fan_out(m)

    def _sync_endpoints(self, stop: threading.Event) -> None:
        """Every endpoint registered before these records were written is in the table after this."""
        while not stop.is_set():
            began = time.time() * 1000
            try:
                self._table.sync()
                self._synced_at_ms = began
                return
            except NotCaughtUp:
                log.warning("endpoint table not in sync with Kafka, waiting")
                self._beat = time.monotonic()
                stop.wait(1.0)

    def _fan_out(self, m: KafkaMessage) -> None:
        topic, partition, offset = m.topic() or "", m.partition() or 0, m.offset() or 0
        MESSAGES_IN.labels(SERVICE, topic).inc()
        span = self._tracer.start_span(
            f"{SERVICE} process", context=context_from_headers(m.headers()), kind=trace.SpanKind.CONSUMER
        )
        span.set_attributes(
            {
                "messaging.system": "kafka",
                "messaging.destination.name": topic,
                "messaging.kafka.destination.partition": partition,
                "messaging.kafka.message.offset": offset,
                "messaging.kafka.message.key": (m.key() or b"").decode(errors="replace"),
            }
        )
        try:
            try:
                event = event_of(topic, m.value())
            except ValueError as exc:
                ticket = self._marks.add((topic, partition), offset, 1)
                letter = DeadLetter.of(
                    SERVICE, "malformed_message", str(exc), (topic, partition, offset), m.key(), m.value()
                )
                self._publish_letter(letter, (m.key() or b"").decode(errors="replace"), ticket)
                return
            if event is None:
                self._marks.add((topic, partition), offset, 0)
                return
            span.set_attributes({"clipstream.webhook.id": event.webhook_id, "clipstream.webhook.type": event.type})
            recorded_ms = _timestamp_ms(m)
            targets = [
                e
                for e in self._table.of_tenant(event.tenant)
                if event.type in e.event_types and e.created_at.timestamp() * 1000 <= recorded_ms
            ]
            ticket = self._marks.add((topic, partition), offset, len(targets))
            context = trace.set_span_in_context(span)
            for endpoint in targets:
                delivery = Delivery(endpoint.endpoint_id, event, (topic, partition, offset), ticket, context)
                self._engine.submit(endpoint, delivery)
        finally:
            span.end()

    def _secret_of(self, endpoint: WebhookEndpoint) -> str:
        return self._box.open(endpoint.secret)

    # --- outcomes ---------------------------------------------------------------------------------------

    def _finished(self, delivery: Delivery, outcome: str) -> None:
        if delivery.finished:
            return
        delivery.finished = True
        DELIVERIES.labels(delivery.event.type, outcome).inc()
        self._marks.done(delivery.ticket)

    def _dead_letter(self, delivery: Delivery, reason: str, detail: str) -> None:
        """A delivery that will not succeed: on `webhooks.deadletter` with its history and the body it carried;
        finished once Kafka has the letter."""
        event = delivery.event
        tenant_key = record_key(event.tenant, delivery.endpoint_id)
        log.warning(
            "webhook dead letter",
            extra={"reason": reason, "endpoint": delivery.endpoint_id, "webhook_id": event.webhook_id},
        )
        letter = DeadLetter.of(
            SERVICE,
            reason,
            f"webhook-id {event.webhook_id} ({event.type}) to endpoint {tenant_key}: {detail}",
            delivery.source,
            tenant_key.encode(),
            event.body,
            tuple(delivery.attempts),
        )
        self._publish_letter(letter, tenant_key, delivery.ticket, lambda: self._finished(delivery, "dead_lettered"))

    def _publish_letter(
        self, letter: DeadLetter, key: str, ticket: Ticket, finished: Callable[[], None] | None = None
    ) -> None:
        def report(err: KafkaError | None, _msg: object) -> None:
            if err is not None:  # Kafka will not take it now: try again, the record stays uncommitted meanwhile
                log.warning("dead letter not written, retrying", extra={"error": str(err)})
                threading.Timer(1.0, self._publish_letter, (letter, key, ticket, finished)).start()
                return
            DEAD_LETTERS.labels(SERVICE, letter.reason).inc()
            MESSAGES_OUT.labels(SERVICE, Topics.WEBHOOK_DEAD_LETTER).inc()
            if finished is not None:
                finished()
            else:
                self._marks.done(ticket)

        try:
            self._producer.produce(
                Topics.WEBHOOK_DEAD_LETTER,
                key=key.encode(),
                value=letter.model_dump_json().encode(),
                on_delivery=report,
            )
        except (BufferError, KafkaException) as exc:
            log.warning("dead letter not queued, retrying", extra={"error": str(exc)})
            threading.Timer(1.0, self._publish_letter, (letter, key, ticket, finished)).start()

    # --- offsets ----------------------------------------------------------------------------------------

    def _commit(self, consumer: Consumer, only: set[Partition] | None = None) -> None:
        try:
            owned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        except (KafkaException, RuntimeError):
            return
        offsets = [
            TopicPartition(t, p, o)
            for (t, p), o in self._marks.committable().items()
            if (t, p) in owned and (only is None or (t, p) in only) and self._committed.get((t, p)) != o
        ]
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.info("commit failed, retrying later", extra={"error": str(exc)})
            return
        for tp in offsets:
            self._committed[(tp.topic, tp.partition)] = tp.offset

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._marks.forget((tp.topic, tp.partition) for tp in partitions)  # from the committed offsets, afresh
        if self._paused:
            consumer.pause(partitions)

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Commit what is finished of the partitions we give away; their new owner delivers the rest again."""
        given = {(tp.topic, tp.partition) for tp in partitions}
        self._commit(consumer, given)
        self._forget(given)

    def _lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._forget({(tp.topic, tp.partition) for tp in partitions})

    def _forget(self, partitions: set[Partition]) -> None:
        self._marks.forget(partitions)
        for partition in partitions:
            self._committed.pop(partition, None)

    def _backpressure(self, consumer: Consumer) -> None:
        pending = self._marks.pending()
        limit = self.settings.max_pending_records
        if not self._paused and pending >= limit:
            log.warning("too many unfinished outcome records: pausing consumption", extra={"pending": pending})
            consumer.pause(consumer.assignment())
            self._paused = True
        elif self._paused and pending <= 0.8 * limit:
            consumer.resume(consumer.assignment())
            self._paused = False


def _timestamp_ms(m: KafkaMessage) -> float:
    kind, value = m.timestamp()
    return float(value) if kind != 0 and value > 0 else time.time() * 1000  # 0: TIMESTAMP_NOT_AVAILABLE


def build(settings: WebhooksSettings) -> Dispatcher:
    return Dispatcher(settings)
