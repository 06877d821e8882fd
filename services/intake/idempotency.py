"""Idempotency-Key answers that hold across replicas and restarts, kept in Kafka rather than in memory.

A keyed registration is written in one Kafka transaction with its `videos.uploaded` event: the record on
the compacted `videos.registrations` topic (keyed by the event id, which derives from tenant + key) holds
the answer every retry replays. Two replicas racing on one key must publish one event; the race is settled
by Kafka's own producer fencing: the key hashes to one of a fixed set of transactional ids, and a request
first claims that id (`init_transactions`, which fences the previous holder and completes or aborts its open
transaction), then reads the registrations partition up to its end, and only publishes if no record for
the key is there. A fenced request starts over and finds the winner's record (or wins itself). The answer
is therefore 202 exactly when this key's event is committed in Kafka, by this request or an earlier one.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from confluent_kafka import KafkaError, KafkaException, Producer
from opentelemetry import trace

from services.common.errors import PermanentError, TransientError
from services.common.kafka.codec import decode
from services.common.kafka.config import producer_config
from services.common.kafka.publisher import NotDelivered, produce_traced
from services.common.kafka.table import TableFollower
from services.common.messages import RETENTION_MS, RegistrationRecord, Topics, VideoUploaded, utcnow
from services.common.settings import CommonSettings
from services.intake.models import Registered

log = logging.getLogger(__name__)
WINDOW = timedelta(milliseconds=RETENTION_MS[Topics.REGISTRATIONS])
FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
ATTEMPTS = 4


class KeyReused(PermanentError):
    """The same Idempotency-Key with another payload: a client bug, never silently answered with the first."""

    reason = "idempotency_key_reused"


class NotCaughtUp(TransientError):
    reason = "registrations_not_caught_up"


class _Failed(Exception):
    def __init__(self, error: KafkaError, maybe: bool) -> None:
        super().__init__(error.str())
        self.error, self.maybe = error, maybe


def _aborted(producer: Producer) -> bool:
    """Abort what is open; True when Kafka confirmed it (then nothing of the transaction can land)."""
    try:
        producer.abort_transaction(2.0)
        return True
    except KafkaException:
        return False  # nothing was open, or the broker is away: the coordinator aborts at the transaction timeout


def _discard(producer: Producer) -> None:
    """Drop a slot's producer. A fenced one raises its fatal error again on close: the outcome is already
    decided above (and that error would replace it), so it is not raised a second time here."""
    try:
        producer.purge()
        producer.close()
    except KafkaException as exc:
        log.info("closing a fenced registration producer", extra={"error": str(exc)})


def partition_of(event_id: str, partitions: int) -> int:
    return int(event_id[1:9], 16) % partitions


class IdempotencyLedger:
    def __init__(self, settings: CommonSettings, service: str, transactional_ids: int = 256) -> None:
        self._settings = settings
        self._service = service
        self._ids = transactional_ids
        self._records: dict[str, RegistrationRecord] = {}
        self._lock = threading.Lock()
        self._id_locks = [threading.Lock() for _ in range(transactional_ids)]  # no self-fencing in one replica
        self._partitions = 0
        self._tracer = trace.get_tracer(f"clipstream.{service}")
        self._table = TableFollower(settings, [Topics.REGISTRATIONS], self._apply, name=f"{service}-registrations")

    def start(self) -> IdempotencyLedger:
        self._table.start()
        return self

    def stop(self) -> None:
        self._table.stop()

    def ready(self) -> bool:
        return self._table.ready()

    def _apply(self, _topic: str, key: str, value: bytes | None) -> None:
        with self._lock:
            if value is None:
                self._records.pop(key, None)
            else:
                self._keep(decode(value, RegistrationRecord))

    def _keep(self, record: RegistrationRecord) -> None:
        self._records.setdefault(record.event_id, record)  # the first committed record is the answer
        if len(self._records) % 1024 == 0:  # retention deletes without tombstones: forget what expired
            horizon = utcnow() - WINDOW
            for event_id in [e for e, r in self._records.items() if r.registered_at < horizon]:
                del self._records[event_id]

    def replay(self, event_id: str, fingerprint: str) -> Registered | None:
        """The earlier answer for this key, if one is known; KeyReused if it was for another payload."""
        with self._lock:
            record = self._records.get(event_id)
        if record is None:
            return None
        if record.fingerprint != fingerprint:
            raise KeyReused(f"this Idempotency-Key registered {record.uri!r} with another payload")
        return Registered.of(event_id, record.video_id, record.uri, replayed=True)

    def register_once(self, upload: VideoUploaded, fingerprint: str, timeout_s: float) -> Registered:
        """Publish `upload` unless its key was registered before; either way, the key's answer."""
        earlier = self.replay(upload.event_id, fingerprint)
        if earlier is not None:
            return earlier
        record = RegistrationRecord(
            event_id=upload.event_id,
            video_id=upload.video_id,
            tenant=upload.tenant,
            uri=upload.uri,
            fingerprint=fingerprint,
        )
        slot = int(upload.event_id[1:9], 16) % self._ids
        deadline = time.monotonic() + timeout_s
        for attempt in range(ATTEMPTS):
            with self._id_locks[slot]:
                try:
                    return self._claim_and_publish(upload, record, slot, deadline)
                except _Failed as failed:
                    error = failed.error
                    if attempt == ATTEMPTS - 1:
                        raise NotDelivered(
                            f"the registration was not committed: {error.str()}", maybe=failed.maybe
                        ) from failed
                    # fenced by another replica racing on the slot, or a commit that failed otherwise (racing
                    # replicas also see "unknown broker error" from EndTxn): the next attempt's init_transactions
                    # settles whatever this one left open and its table sync reads the answer if it landed, so
                    # trying again (within the deadline) can neither lose nor duplicate the registration
                    log.info(
                        "registration attempt failed, settling the slot and reading its answer",
                        extra={"slot": slot, "fenced": error.code() in FENCED, "error": error.str()},
                    )
        raise AssertionError("unreachable")

    def _claim_and_publish(
        self, upload: VideoUploaded, record: RegistrationRecord, slot: int, deadline: float
    ) -> Registered:
        def left() -> float:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotDelivered("no answer from Kafka within the publish timeout", maybe=committing)
            return remaining

        committing = False
        producer = Producer(producer_config(self._settings, transactional_id=f"{self._service}-registrations-{slot}"))
        try:
            producer.init_transactions(left())  # fences the slot's previous holder, settles its transaction
            partitions = self._partition_count(producer, left())
            partition = partition_of(upload.event_id, partitions)
            if not self._table.sync(left(), [(Topics.REGISTRATIONS, partition)]):
                raise NotCaughtUp("the registrations table has not caught up with Kafka")
            earlier = self.replay(upload.event_id, record.fingerprint)
            if earlier is not None:
                return earlier
            producer.begin_transaction()
            produce_traced(producer, self._tracer, self._service, Topics.UPLOADED, upload)
            produce_traced(
                producer,
                self._tracer,
                self._service,
                Topics.REGISTRATIONS,
                record,
                key=upload.event_id,
                partition=partition,
            )
            committing = True
            producer.commit_transaction(left())
        except KafkaException as exc:
            raise _Failed(exc.args[0], maybe=committing and not _aborted(producer)) from exc
        except BaseException:
            _aborted(producer)
            raise
        finally:
            _discard(producer)
        with self._lock:
            self._keep(record)
        return Registered.of(upload.event_id, upload.video_id, upload.uri)

    def _partition_count(self, producer: Producer, timeout_s: float) -> int:
        if not self._partitions:
            meta = producer.list_topics(Topics.REGISTRATIONS, timeout=timeout_s)
            self._partitions = len(meta.topics[Topics.REGISTRATIONS].partitions)
        return self._partitions
