"""Outcome webhooks: the endpoint registry every replica follows, its settings, and the secrets' encryption.

Endpoints live on the compacted `webhooks.endpoints` topic (one record per endpoint, key
`<tenant>/<endpoint id>`, a tombstone deletes). The gateway writes them (`EndpointRegistry`) and the
dispatcher (`services.webhooks`) reads them (`EndpointTable`, a `TableFollower`): no database, and every
replica sees every endpoint. Signing secrets (`whsec_...`, Standard Webhooks) are made here, shown to the
caller once, and stored only encrypted with the webhooks key (`CLIPSTREAM_WEBHOOKS_SECRET_KEY`; one or more
comma-separated keys, the first encrypts, any decrypts, so a key can be rotated); they are never logged.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Producer
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.errors import Misconfigured, TransientError
from services.common.kafka.codec import decode
from services.common.kafka.config import producer_config
from services.common.kafka.table import TableFollower
from services.common.messages import Topics, WebhookEndpoint, WebhookEventType, utcnow
from services.common.settings import CommonSettings

log = logging.getLogger(__name__)
LOCAL_KEY_FILE = "webhooks-secret-key"  # the local stack's generated key, in the state folder
SECRET_PREFIX = "whsec_"


class WebhookSettings(BaseSettings):
    """What the gateway (registration) and the dispatcher (delivery) share (`CLIPSTREAM_WEBHOOKS_*`)."""

    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_WEBHOOKS_", extra="ignore")

    secret_key: SecretStr | None = Field(
        default=None,
        repr=False,
        description="encrypts the signing secrets at rest: comma-separated keys of 32+ characters, the first "
        "encrypts; none: the local stack's generated key in the state folder",
    )
    allowed_url_prefixes: list[str] = Field(
        default_factory=list,
        description="receiver URLs must sit under one (scheme, host, port and whole path segments match, no "
        "userinfo); empty: no endpoint can be registered",
    )
    max_endpoints_per_tenant: int = Field(default=20, ge=1, le=1000)

    def cipher(self, common: CommonSettings) -> SecretBox:
        if self.secret_key is not None:
            keys = [k.strip() for k in self.secret_key.get_secret_value().split(",") if k.strip()]
        else:
            keys = [common.local_secret(LOCAL_KEY_FILE)]
        if not keys or any(len(k) < 32 for k in keys):
            raise Misconfigured("the webhooks secret key must be one or more keys of at least 32 characters")
        return SecretBox(keys)


class SecretBox:
    """Fernet (AES-128-CBC + HMAC-SHA256) under keys derived from the configured ones, so any long random
    string (e.g. `openssl rand -base64 32`) is a key."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._fernet = MultiFernet([Fernet(_fernet_key(k)) for k in keys])

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise Misconfigured("a webhook secret does not decrypt with the configured keys") from exc


def _fernet_key(key: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(b"clipstream-webhooks\n" + key.encode()).digest())


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def new_endpoint_id() -> str:
    """`ep_` + 12 hex digits of milliseconds + 12 random: ids sort in creation order (listing cursors)."""
    return f"ep_{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


def record_key(tenant: str, endpoint_id: str) -> str:
    return f"{tenant}/{endpoint_id}"


class NotCaughtUp(TransientError):
    reason = "webhooks_not_caught_up"


class EndpointTable:
    """Every endpoint, followed into memory from the topic; `sync()` before a read that must see every write
    made before it (another replica's included)."""

    def __init__(self, common: CommonSettings, name: str) -> None:
        self._by_tenant: dict[str, dict[str, WebhookEndpoint]] = {}
        self._lock = threading.Lock()
        self._sync_timeout_s = common.kafka_call_timeout_s
        self._follower = TableFollower(common, [Topics.WEBHOOK_ENDPOINTS], self._apply, name=name)

    def start(self) -> EndpointTable:
        self._follower.start()
        return self

    def stop(self) -> None:
        self._follower.stop()

    def ready(self) -> bool:
        return self._follower.ready()

    def wait_caught_up(self, timeout_s: float) -> bool:
        return self._follower.wait_caught_up(timeout_s)

    def sync(self, partitions: list[tuple[str, int]] | None = None) -> None:
        """Wait until what was written before this call is applied; NotCaughtUp (503) when it cannot be sure."""
        self._follower.wait_caught_up(self._sync_timeout_s)
        if not self._follower.sync(self._sync_timeout_s, partitions):
            raise NotCaughtUp("the webhook endpoints have not caught up with Kafka yet")

    def _apply(self, _topic: str, key: str, value: bytes | None) -> None:
        tenant, _, endpoint_id = key.rpartition("/")
        with self._lock:
            if value is None:
                self._by_tenant.get(tenant, {}).pop(endpoint_id, None)
                return
            endpoint = decode(value, WebhookEndpoint)
            if (endpoint.tenant, endpoint.endpoint_id) != (tenant, endpoint_id):
                raise ValueError(f"record {key!r} names endpoint {endpoint.tenant}/{endpoint.endpoint_id}")
            self._by_tenant.setdefault(tenant, {})[endpoint_id] = endpoint

    def of_tenant(self, tenant: str) -> list[WebhookEndpoint]:
        """The tenant's endpoints in creation order."""
        with self._lock:
            found = self._by_tenant.get(tenant, {})
            return [found[k] for k in sorted(found)]

    def get(self, tenant: str, endpoint_id: str) -> WebhookEndpoint | None:
        with self._lock:
            return self._by_tenant.get(tenant, {}).get(endpoint_id)

    def ids(self) -> set[str]:
        with self._lock:
            return {e for endpoints in self._by_tenant.values() for e in endpoints}


class EndpointRegistry:
    """The writing side (the gateway): endpoints and tombstones, each write waited for and read back."""

    def __init__(self, common: CommonSettings, settings: WebhookSettings, service: str = "gateway") -> None:
        self.settings = settings
        self.table = EndpointTable(common, f"{service}-webhooks")
        self._box = settings.cipher(common)
        self._producer = Producer(producer_config(common))
        self._timeout_s = common.kafka_call_timeout_s

    def start(self) -> EndpointRegistry:
        self.table.start()
        return self

    def stop(self) -> None:
        self.table.stop()
        self._producer.flush(5)

    def create(
        self, tenant: str, url: str, event_types: list[WebhookEventType], description: str = ""
    ) -> tuple[WebhookEndpoint, str]:
        """The new endpoint and its signing secret in clear (the only time it is ever shown)."""
        secret = new_secret()
        endpoint = WebhookEndpoint(
            endpoint_id=new_endpoint_id(),
            tenant=tenant,
            url=url,
            event_types=list(dict.fromkeys(event_types)),
            description=description,
            secret=self._box.seal(secret),
            created_at=utcnow(),
        )
        self._write(record_key(tenant, endpoint.endpoint_id), endpoint.model_dump_json().encode())
        return endpoint, secret

    def delete(self, tenant: str, endpoint_id: str) -> None:
        self._write(record_key(tenant, endpoint_id), None)

    def _write(self, key: str, value: bytes | None) -> None:
        """Produce, wait for this record's own delivery report, then for the table to have applied it."""
        done = threading.Event()
        outcome: dict[str, object] = {}

        def report(err: KafkaError | None, msg: object) -> None:
            outcome["error"], outcome["partition"] = err, getattr(msg, "partition", lambda: 0)()
            done.set()

        try:
            self._producer.produce(Topics.WEBHOOK_ENDPOINTS, key=key.encode(), value=value, on_delivery=report)
        except (BufferError, KafkaException) as exc:
            raise TransientError(f"the endpoint was not queued: {exc}", reason="kafka_unavailable") from exc
        deadline = time.monotonic() + self._timeout_s
        while not done.is_set():  # whichever request polls serves every waiting request's report
            if time.monotonic() > deadline:
                raise TransientError("no delivery report in time (the change may still land)", "kafka_unavailable")
            self._producer.poll(0.05)
        if outcome["error"] is not None:
            raise TransientError(f"the endpoint was not written: {outcome['error']}", reason="kafka_unavailable")
        partition = outcome["partition"]
        assert isinstance(partition, int)
        self.table.sync([(Topics.WEBHOOK_ENDPOINTS, partition)])
