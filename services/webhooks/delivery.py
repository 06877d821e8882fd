"""Delivering events to endpoints: signing, classification of answers, backoff, one worker per endpoint.

Every endpoint has its own worker (its own queue, HTTP client and connection pool, `concurrency` requests in
flight) on one asyncio loop, so a slow or failing receiver only ever delays its own deliveries. A delivery
waiting for its next attempt holds no worker slot. Each attempt is signed afresh (Standard Webhooks: the
`webhook-timestamp` is the attempt's, the `webhook-id` the event's), its URL is checked against the
allowlist again, and redirects are never followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

import httpx
from opentelemetry import trace
from opentelemetry.context import Context
from prometheus_client import Counter, Gauge, Histogram
from standardwebhooks import Webhook

from services.common.messages import WebhookEndpoint
from services.media.errors import DecodeError
from services.media.sources import check_http
from services.webhooks.events import Event
from services.webhooks.settings import WebhooksSettings
from services.webhooks.watermark import Ticket

log = logging.getLogger(__name__)

DELIVERIES = Counter(
    "clipstream_webhook_deliveries_total",
    "Webhook deliveries by final outcome: delivered, dead_lettered, dropped (endpoint deleted), skipped (same id "
    "delivered or pending already)",
    ["event_type", "outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "clipstream_webhook_attempt_seconds",
    "One delivery attempt, request to answer, by how it was classified",
    ["result"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PENDING = Gauge(
    "clipstream_webhook_pending", "Deliveries not finished per endpoint (queued, in flight, waiting)", ["endpoint"]
)
RECENTLY_DELIVERED = 4096  # ids remembered per endpoint, so a repeated status record is not sent again


@dataclass(frozen=True)
class Verdict:
    result: Literal["delivered", "transient", "permanent"]
    reason: str


def classify(status: int) -> Verdict:
    """2xx delivered; 408, 429 and 5xx are worth retrying; 410 Gone and any other 4xx never will succeed
    (dead letter, nothing disabled silently); a redirect is not followed (SSRF), so it is permanent too."""
    if 200 <= status < 300:
        return Verdict("delivered", "ok")
    if status in (408, 429) or 500 <= status < 600:
        return Verdict("transient", f"http_{status}")
    if status == 410:
        return Verdict("permanent", "receiver_gone")
    if 300 <= status < 400:
        return Verdict("permanent", "redirect_refused")
    if 400 <= status < 500:
        return Verdict("permanent", "receiver_rejected")
    return Verdict("transient", f"http_{status}")


def schedule(settings: WebhooksSettings) -> list[float]:
    """The waits between attempts before jitter: initial * factor^k, at most the maximum."""
    return [
        min(settings.retry_initial_s * settings.retry_factor**k, settings.retry_max_s)
        for k in range(settings.max_attempts - 1)
    ]


def backoff_s(
    settings: WebhooksSettings,
    failed_attempts: int,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """The wait after the `failed_attempts`-th failure, jittered; a receiver's Retry-After (up to the maximum
    wait) is honoured when it asks for longer."""
    base = min(settings.retry_initial_s * settings.retry_factor ** (failed_attempts - 1), settings.retry_max_s)
    jitter = settings.retry_jitter
    wait = base * (rng or random).uniform(1 - jitter, 1 + jitter)
    if retry_after_s is not None:
        wait = max(wait, min(retry_after_s, settings.retry_max_s))
    return wait


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def signed_headers(signer: Webhook, webhook_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """Standard Webhooks headers: the signature covers `id.timestamp.body`, the body's exact bytes."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signer.sign(webhook_id, at, body.decode()),
        "content-type": "application/json",
        "user-agent": "clipstream-webhooks/1",
    }


@dataclass(eq=False)
class Delivery:
    """One event to one endpoint, from the record at `source` (topic, partition, offset)."""

    endpoint_id: str
    event: Event
    source: tuple[str, int, int]
    ticket: Ticket
    context: Context | None = None  # the consuming span's: attempts are its children
    attempts: list[str] = field(default_factory=list)
    finished: bool = False


Finish = Callable[[Delivery, str], None]  # the delivery and its outcome
GiveUp = Callable[[Delivery, str, str], None]  # dead-letter it: the delivery, reason, detail


class EndpointWorker:
    """One endpoint's deliveries: its queue, its client, `concurrency` tasks."""

    def __init__(
        self, endpoint: WebhookEndpoint, secret: str, settings: WebhooksSettings, finish: Finish, give_up: GiveUp
    ) -> None:
        self.endpoint = endpoint
        self._signer = Webhook(secret)
        self._settings = settings
        self._finish, self._give_up = finish, give_up
        self._host = urlsplit(endpoint.url).hostname or ""
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: the allowlist is about where requests go
            timeout=settings.request_timeout_s,
            limits=httpx.Limits(
                max_connections=settings.concurrency_per_endpoint,
                max_keepalive_connections=settings.concurrency_per_endpoint,
            ),
        )
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._pending: dict[str, Delivery] = {}  # by webhook id
        self._timers: dict[Delivery, asyncio.TimerHandle] = {}
        self._delivered: OrderedDict[str, None] = OrderedDict()
        self._tracer = trace.get_tracer("clipstream.webhooks")
        self._tasks = [asyncio.create_task(self._work()) for _ in range(settings.concurrency_per_endpoint)]

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _gauge(self) -> None:
        PENDING.labels(self.endpoint.endpoint_id).set(len(self._pending))

    def submit(self, delivery: Delivery) -> None:
        webhook_id = delivery.event.webhook_id
        if webhook_id in self._pending or webhook_id in self._delivered:
            # the same event again (a repeated status record): the earlier copy sits on the same partition at a
            # lower offset, so the commit point waits for it anyway
            self._finish(delivery, "skipped")
            return
        if len(self._pending) >= self._settings.max_pending_per_endpoint:
            self._give_up(
                delivery,
                "endpoint_backlog_full",
                f"{self._settings.max_pending_per_endpoint} deliveries already pending for this endpoint",
            )
            return
        self._pending[webhook_id] = delivery
        self._queue.put_nowait(delivery)
        self._gauge()

    async def _work(self) -> None:
        while True:
            delivery = await self._queue.get()
            if not delivery.finished:
                await self._attempt(delivery)

    async def _attempt(self, delivery: Delivery) -> None:
        verdict, detail, retry_after = await self._send(delivery)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        delivery.attempts.append(f"{stamp} {verdict.reason}: {detail}"[:500])
        if verdict.result == "delivered":
            self._done(delivery)
            self._delivered[delivery.event.webhook_id] = None
            if len(self._delivered) > RECENTLY_DELIVERED:
                self._delivered.popitem(last=False)
            self._finish(delivery, "delivered")
        elif verdict.result == "permanent" or len(delivery.attempts) >= self._settings.max_attempts:
            self._done(delivery)
            reason = verdict.reason if verdict.result == "permanent" else "retries_exhausted"
            self._give_up(delivery, reason, f"{len(delivery.attempts)} attempts; last: {detail}")
        else:
            wait = backoff_s(self._settings, len(delivery.attempts), retry_after)
            self._timers[delivery] = asyncio.get_running_loop().call_later(wait, self._again, delivery)

    def _again(self, delivery: Delivery) -> None:
        self._timers.pop(delivery, None)
        if not delivery.finished:
            self._queue.put_nowait(delivery)

    def _done(self, delivery: Delivery) -> None:
        self._pending.pop(delivery.event.webhook_id, None)
        self._gauge()

    async def _send(self, delivery: Delivery) -> tuple[Verdict, str, float | None]:
        """One attempt: the verdict, a line for the history, and the receiver's Retry-After."""
        url = self.endpoint.url
        try:
            check_http(url, self._settings.endpoints.allowed_url_prefixes)  # the allowlist may have changed
        except DecodeError as exc:
            return Verdict("permanent", "url_not_allowed"), exc.detail, None
        event = delivery.event
        headers = signed_headers(self._signer, event.webhook_id, event.body, datetime.now(UTC))
        span = self._tracer.start_span("webhooks deliver", context=delivery.context, kind=trace.SpanKind.CLIENT)
        span.set_attributes(
            {
                "http.request.method": "POST",
                "server.address": self._host,
                "clipstream.webhook.id": event.webhook_id,
                "clipstream.webhook.endpoint": self.endpoint.endpoint_id,
                "clipstream.webhook.type": event.type,
                "clipstream.webhook.attempt": len(delivery.attempts) + 1,
            }
        )
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self._settings.request_timeout_s):  # the whole exchange, body included
                async with self._client.stream("POST", url, content=event.body, headers=headers) as response:
                    said = b""
                    async for chunk in response.aiter_bytes():
                        said += chunk
                        if len(said) >= 256:  # enough for the history; a huge answer is never read
                            break
                verdict = classify(response.status_code)
                span.set_attribute("http.response.status_code", response.status_code)
                detail = f"HTTP {response.status_code} {said[:256].decode(errors='replace')!r}"
                retry_after = _retry_after(response)
        except (TimeoutError, httpx.TimeoutException):
            verdict, detail, retry_after = Verdict("transient", "receiver_timeout"), "no answer in time", None
        except httpx.HTTPError as exc:  # refused, reset, DNS, TLS: the receiver is not there
            verdict, detail, retry_after = Verdict("transient", "receiver_unreachable"), type(exc).__name__, None
        except Exception as exc:  # never let one attempt end the worker: retried, then dead-lettered
            log.exception("webhook attempt failed unexpectedly", extra={"endpoint": self.endpoint.endpoint_id})
            verdict, detail, retry_after = Verdict("transient", "internal_error"), type(exc).__name__, None
        finally:
            span.end()
        ATTEMPT_SECONDS.labels(verdict.result).observe(time.perf_counter() - start)
        return verdict, detail, retry_after

    async def close(self, drop: bool = True) -> None:
        """Stop: its tasks and client closed. `drop`: the endpoint was deleted, its pending deliveries are
        finished as dropped (otherwise, at shutdown, they stay unfinished and uncommitted)."""
        for task in self._tasks:
            task.cancel()
        for timer in self._timers.values():
            timer.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for delivery in list(self._pending.values()) if drop else []:
            self._done(delivery)
            self._finish(delivery, "dropped")
        await self._client.aclose()
        PENDING.remove(self.endpoint.endpoint_id)


Resolve = Callable[[WebhookEndpoint], str]  # the endpoint's signing secret, decrypted


class DeliveryEngine:
    """The asyncio side, in a thread of its own: `submit` and `reap` may be called from any thread."""

    def __init__(self, settings: WebhooksSettings, secret_of: Resolve, finish: Finish, give_up: GiveUp) -> None:
        self._settings = settings
        self._secret_of = secret_of
        self._finish, self._give_up = finish, give_up
        self._workers: dict[str, EndpointWorker] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="webhook-deliveries", daemon=True)
        self._beat = time.monotonic()

    def start(self) -> DeliveryEngine:
        self._thread.start()
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.create_task(self._heartbeat())
        self._loop.run_forever()

    async def _heartbeat(self) -> None:
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(1.0)

    def live(self) -> bool:
        """False when the loop has not run for a while (something blocks it)."""
        return self._thread.is_alive() and time.monotonic() - self._beat < 30

    def submit(self, endpoint: WebhookEndpoint, delivery: Delivery) -> None:
        self._loop.call_soon_threadsafe(self._submit, endpoint, delivery)

    def _submit(self, endpoint: WebhookEndpoint, delivery: Delivery) -> None:
        worker = self._workers.get(endpoint.endpoint_id)
        if worker is None:
            try:
                secret = self._secret_of(endpoint)
            except Exception as exc:  # a secret sealed with a key this replica does not have
                self._give_up(delivery, "secret_unreadable", str(exc))
                return
            worker = self._workers[endpoint.endpoint_id] = EndpointWorker(
                endpoint, secret, self._settings, self._finish, self._give_up
            )
        worker.submit(delivery)

    def reap(self, live_endpoints: set[str]) -> None:
        """Close the workers of endpoints that were deleted."""
        self._loop.call_soon_threadsafe(self._reap, live_endpoints)

    def _reap(self, live_endpoints: set[str]) -> None:
        for endpoint_id in [e for e in self._workers if e not in live_endpoints]:
            self._loop.create_task(self._workers.pop(endpoint_id).close())

    def pending(self) -> dict[str, int]:
        return {e: w.pending for e, w in list(self._workers.items())}

    def stop(self) -> None:
        """Leave what is pending undelivered (and uncommitted: a restart delivers it) and stop the loop."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    async def _shutdown(self) -> None:
        workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            await worker.close(drop=False)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
