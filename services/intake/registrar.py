"""The one registration step behind every door: admit, publish, wait for this request's own delivery.

A 202 (or the CLI's "registered") means the `videos.uploaded` event is in Kafka, so the upload will reach an
outcome (indexed, or failed with its reason). Without an Idempotency-Key the event goes through the shared
idempotent producer and the request waits for its own message's delivery report; with one, through the
idempotency ledger, so retries and racing replicas publish one event and replay its answer.
"""

from __future__ import annotations

from prometheus_client import Counter

from services.common.errors import ClipstreamError
from services.common.kafka.publisher import Publisher
from services.common.messages import Topics, VideoUploaded
from services.common.settings import CommonSettings
from services.intake.idempotency import IdempotencyLedger
from services.intake.models import Registered, Registration
from services.intake.registration import event_id_for, upload_of
from services.media.sources import SourcePolicy

REGISTRATIONS = Counter("clipstream_registrations_total", "registrations by door and outcome", ["door", "outcome"])


class Registrar:
    def __init__(
        self,
        settings: CommonSettings,
        policy: SourcePolicy,
        publisher: Publisher,
        ledger: IdempotencyLedger | None = None,
    ) -> None:
        self._settings = settings
        self._policy = policy
        self._publisher = publisher
        self._ledger = ledger

    def replay(self, tenant: str, body: Registration, idempotency_key: str | None) -> Registered | None:
        """The answer an earlier request with this key got (checked before a door stores any bytes)."""
        event_id = event_id_for(tenant, idempotency_key)
        if event_id is None or self._ledger is None:
            return None
        return self._ledger.replay(event_id, body.fingerprint())

    def admit(self, tenant: str, body: Registration) -> None:
        """Refuse now what `register` would refuse before publishing (a source outside the policy), for a door
        that takes the bytes first."""
        upload_of(tenant, body, self._policy)

    def register(
        self, tenant: str, body: Registration, idempotency_key: str | None = None, door: str = "api"
    ) -> tuple[Registered, VideoUploaded]:
        try:
            answer, upload = self._register(tenant, body, idempotency_key)
        except ClipstreamError as exc:
            REGISTRATIONS.labels(door, exc.reason).inc()
            raise
        REGISTRATIONS.labels(door, "replayed" if answer.replayed else "registered").inc()
        return answer, upload

    def _register(
        self, tenant: str, body: Registration, idempotency_key: str | None
    ) -> tuple[Registered, VideoUploaded]:
        timeout_s = self._settings.kafka_call_timeout_s
        event_id = event_id_for(tenant, idempotency_key)
        upload = upload_of(tenant, body, self._policy, event_id)
        if event_id is not None:
            if self._ledger is None:
                raise RuntimeError("a keyed registration needs the idempotency ledger")
            return self._ledger.register_once(upload, body.fingerprint(), timeout_s), upload
        self._publisher.deliver(Topics.UPLOADED, upload, timeout_s)
        return Registered.of(upload.event_id, upload.video_id, upload.uri), upload
