"""Delivery against real receivers on loopback: answers classified at each boundary, backoff with jitter,
Standard Webhooks signatures, retries with the same id, dead letters with the history, and endpoints that
never wait for each other."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from services.common.messages import WebhookEndpoint
from services.common.settings import CommonSettings
from services.common.webhooks import WebhookSettings, new_secret
from services.webhooks.delivery import Delivery, DeliveryEngine, backoff_s, classify, schedule, signed_headers
from services.webhooks.events import Event, webhook_id
from services.webhooks.settings import WebhooksSettings
from services.webhooks.watermark import Watermarks
from tests.receivers import Receiver


@pytest.mark.parametrize(
    ("status", "result", "reason"),
    [
        (199, "transient", "http_199"),
        (200, "delivered", "ok"),
        (204, "delivered", "ok"),
        (299, "delivered", "ok"),
        (300, "permanent", "redirect_refused"),
        (302, "permanent", "redirect_refused"),
        (399, "permanent", "redirect_refused"),
        (400, "permanent", "receiver_rejected"),
        (407, "permanent", "receiver_rejected"),
        (408, "transient", "http_408"),
        (409, "permanent", "receiver_rejected"),
        (410, "permanent", "receiver_gone"),
        (411, "permanent", "receiver_rejected"),
        (428, "permanent", "receiver_rejected"),
        (429, "transient", "http_429"),
        (430, "permanent", "receiver_rejected"),
        (499, "permanent", "receiver_rejected"),
        (500, "transient", "http_500"),
        (503, "transient", "http_503"),
        (599, "transient", "http_599"),
        (600, "transient", "http_600"),
    ],
)
def test_answers_are_classified_at_each_boundary(status: int, result: str, reason: str) -> None:
    verdict = classify(status)
    assert (verdict.result, verdict.reason) == (result, reason)


def test_the_default_schedule_and_its_jitter() -> None:
    settings = WebhooksSettings()
    assert schedule(settings) == [5, 20, 80, 320, 1280, 3600, 3600]
    rng = random.Random(1)
    for failed, base in enumerate(schedule(settings), start=1):
        waits = [backoff_s(settings, failed, rng=rng) for _ in range(200)]
        assert base * 0.8 <= min(waits) < base * 0.85 and base * 1.15 < max(waits) <= base * 1.2
    # a receiver asking for longer is given it, up to the longest wait
    assert backoff_s(settings, 1, retry_after_s=120, rng=rng) == 120
    assert backoff_s(settings, 1, retry_after_s=10**6, rng=rng) == 3600
    assert backoff_s(settings, 3, retry_after_s=1, rng=rng) >= 64


def test_signatures_verify_with_standard_webhooks_and_only_over_the_exact_bytes() -> None:
    secret = new_secret()
    body = '{"type":"video.indexed","data":{"title":"caf\u00e9 \u6f22"}}'.encode()
    headers = signed_headers(Webhook(secret), "msg_1", body, datetime.now(UTC))
    assert Webhook(secret).verify(body, headers)["type"] == "video.indexed"
    for wrong in (body + b" ", body.replace(b"indexed", b"failed")):
        with pytest.raises(Exception, match="signature"):
            Webhook(secret).verify(wrong, headers)
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret()).verify(body, headers)


# --- the engine against receivers -----------------------------------------------------------------------


class Harness:
    """An engine with fake dead letters (kept in a list) and the real watermark tickets."""

    def __init__(self, tmp_path: Path, allowed: list[str], **overrides: object) -> None:
        fields: dict[str, object] = {
            "retry_initial_s": 0.05,
            "retry_factor": 2.0,
            "retry_max_s": 0.2,
            "retry_jitter": 0.0,
            "max_attempts": 4,
            "request_timeout_s": 2.0,
            **overrides,
        }
        self.settings = WebhooksSettings(
            common=CommonSettings(home=tmp_path),
            endpoints=WebhookSettings(allowed_url_prefixes=allowed),
            **fields,  # type: ignore[arg-type]
        )
        self.secrets: dict[str, str] = {}
        self.outcomes: list[tuple[str, str, str]] = []  # endpoint, webhook id, outcome
        self.letters: list[tuple[Delivery, str, str]] = []
        self.marks = Watermarks()
        self._lock = threading.Lock()
        self.engine = DeliveryEngine(self.settings, lambda e: self.secrets[e.endpoint_id], self._finish, self._give_up)
        self.engine.start()
        self._offset = 0

    def _finish(self, delivery: Delivery, outcome: str) -> None:
        with self._lock:
            self.outcomes.append((delivery.endpoint_id, delivery.event.webhook_id, outcome))
        self.marks.done(delivery.ticket)

    def _give_up(self, delivery: Delivery, reason: str, detail: str) -> None:
        with self._lock:
            self.letters.append((delivery, reason, detail))
        self._finish(delivery, "dead_lettered")

    def endpoint(self, url: str, name: str) -> WebhookEndpoint:
        endpoint_id = "ep_" + name.encode().hex().ljust(24, "0")[:24]
        self.secrets[endpoint_id] = new_secret()
        return WebhookEndpoint(
            endpoint_id=endpoint_id,
            tenant="t",
            url=url,
            event_types=["video.indexed"],
            secret="sealed",
            created_at=datetime.now(UTC),
        )

    def send(self, endpoint: WebhookEndpoint, video: str) -> Event:
        body = f'{{"type":"video.indexed","data":{{"video_id":"{video}"}}}}'.encode()
        event = Event("video.indexed", webhook_id("video.indexed", video, "e"), "t", video, body)
        self._offset += 1
        ticket = self.marks.add(("videos.status", 0), self._offset, 1)
        self.engine.submit(endpoint, Delivery(endpoint.endpoint_id, event, ("videos.status", 0, self._offset), ticket))
        return event

    def wait_finished(self, count: int, timeout_s: float = 10) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.outcomes) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.outcomes) >= count, self.outcomes


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    def plan(path: str, before: int) -> tuple[int, float, dict[str, str]]:
        if path == "/flaky":  # two failures, then it takes it
            return (503 if before < 2 else 200), 0.0, {}
        if path.startswith("/status/"):
            return int(path.rsplit("/", 1)[1]), 0.0, {}
        if path == "/redirect":
            return 302, 0.0, {"location": "/elsewhere"}
        if path == "/slow":
            return 200, 1.0, {}
        return 200, 0.0, {}

    found = Receiver(plan=plan).start()
    yield found
    found.stop()


@pytest.fixture
def harness(tmp_path: Path, receiver: Receiver) -> Iterator[Harness]:
    made = Harness(tmp_path, [receiver.url("/")])
    yield made
    made.engine.stop()


def test_a_failing_receiver_gets_the_same_event_again_freshly_signed(harness: Harness, receiver: Receiver) -> None:
    endpoint = harness.endpoint(receiver.url("/flaky"), "flaky")
    event = harness.send(endpoint, "v1")
    harness.wait_finished(1)
    arrivals = receiver.at("/flaky")
    assert [a.webhook_id for a in arrivals] == [event.webhook_id] * 3
    assert all(a.body == event.body for a in arrivals)
    secret = harness.secrets[endpoint.endpoint_id]
    assert all(a.verified(secret) == {"type": "video.indexed", "data": {"video_id": "v1"}} for a in arrivals)
    assert harness.outcomes == [(endpoint.endpoint_id, event.webhook_id, "delivered")]
    assert harness.marks.committable() == {("videos.status", 0): 2}


@pytest.mark.parametrize(("status", "reason"), [(410, "receiver_gone"), (400, "receiver_rejected")])
def test_a_permanent_answer_is_dead_lettered_after_one_attempt(
    harness: Harness, receiver: Receiver, status: int, reason: str
) -> None:
    endpoint = harness.endpoint(receiver.url(f"/status/{status}"), "perm")
    harness.send(endpoint, "v1")
    harness.wait_finished(1)
    ((delivery, got, detail),) = harness.letters
    assert got == reason and len(receiver.at(f"/status/{status}")) == 1
    assert len(delivery.attempts) == 1 and f"HTTP {status}" in delivery.attempts[0] and "1 attempts" in detail


def test_a_redirect_is_not_followed(harness: Harness, receiver: Receiver) -> None:
    harness.send(harness.endpoint(receiver.url("/redirect"), "redir"), "v1")
    harness.wait_finished(1)
    assert harness.letters[0][1] == "redirect_refused"
    assert receiver.at("/elsewhere") == []


def test_a_receiver_that_is_not_there_is_retried_then_dead_lettered_with_the_history(
    harness: Harness, receiver: Receiver
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    harness.settings.endpoints.allowed_url_prefixes.append(f"http://127.0.0.1:{port}/")
    harness.send(harness.endpoint(f"http://127.0.0.1:{port}/down", "down"), "v1")
    harness.wait_finished(1)
    ((delivery, reason, _),) = harness.letters
    assert reason == "retries_exhausted" and len(delivery.attempts) == 4
    assert all("receiver_unreachable" in a for a in delivery.attempts)


def test_an_url_no_longer_allowed_is_not_called(harness: Harness, receiver: Receiver) -> None:
    endpoint = harness.endpoint(receiver.url("/ok"), "gone")
    harness.settings.endpoints.allowed_url_prefixes[:] = ["http://127.0.0.1:1/other/"]
    harness.send(endpoint, "v1")
    harness.wait_finished(1)
    assert harness.letters[0][1] == "url_not_allowed" and receiver.at("/ok") == []


def test_a_slow_endpoint_never_delays_another(harness: Harness, receiver: Receiver) -> None:
    slow, fast = harness.endpoint(receiver.url("/slow"), "slow"), harness.endpoint(receiver.url("/fast"), "fast")
    start = time.monotonic()
    for i in range(12):  # 3 rounds of 1 s at 4 in flight for the slow one
        harness.send(slow, f"s{i}")
        harness.send(fast, f"f{i}")
    fast_arrivals = receiver.wait_for("/fast", 12, 5)
    assert max(a.at for a in fast_arrivals) - start < 0.8
    harness.wait_finished(24)
    assert max(a.at for a in receiver.at("/slow")) - start > 1.9


def test_the_same_event_twice_is_sent_once_and_a_full_backlog_is_dead_lettered(
    tmp_path: Path, receiver: Receiver
) -> None:
    harness = Harness(tmp_path, [receiver.url("/")], max_pending_per_endpoint=2, concurrency_per_endpoint=1)
    try:
        endpoint = harness.endpoint(receiver.url("/slow"), "backlog")
        harness.send(endpoint, "a")
        harness.send(endpoint, "a")  # a repeated status record: same id while the first is pending
        harness.send(endpoint, "b")
        harness.send(endpoint, "c")  # the third pending one: over the bound
        harness.wait_finished(4)
        assert sorted(o for _, _, o in harness.outcomes) == ["dead_lettered", "delivered", "delivered", "skipped"]
        assert [reason for _, reason, _ in harness.letters] == ["endpoint_backlog_full"]
        assert len(receiver.at("/slow")) == 2
    finally:
        harness.engine.stop()
