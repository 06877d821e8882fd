"""Outcome webhooks against the real stack and real HTTP receivers on loopback: endpoints registered over the
gateway get every outcome of their tenant's videos (indexed, QC verdict, duplicate found, failed, deleted),
signed (Standard Webhooks); a receiver down while they happen (through several retries of each) gets all of
them once it is back, with the same ids; a slow receiver does not delay a healthy one; another tenant's
endpoint gets nothing."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.clip.toy.world import Scene
from services.media.synthetic import write_world_clip
from services.webhooks.events import webhook_id
from tests.integration.conftest import GATEWAY_URL, port
from tests.integration.test_gateway import _wait_for  # polls an upload's status until one of the stages
from tests.receivers import Arrival, Receiver

A, B = {"Authorization": "Bearer hook-key-a"}, {"Authorization": "Bearer hook-key-b"}
HEALTHY_PORT, DOWN_PORT, SLOW_PORT = port(28471), port(28472), port(28473)  # the allowlist in conftest's TEST_ENV
DOWN_AFTER_S = 10.0  # after the last event: with retries at 1, 2, 4 s every event has failed there 3+ times
SLOW_S = 3.0
SCENE = Scene("triangle", "blue", "two", "large", "water")


def _register(path: Path, **fields: Any) -> dict[str, Any]:
    response = httpx.post(f"{GATEWAY_URL}/v1/videos", json={"uri": path.resolve().as_uri(), **fields}, headers=A)
    assert response.status_code == 202, response.text
    return response.json()


def _endpoint(url: str, headers: dict[str, str] = A, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{GATEWAY_URL}/v1/webhooks", json={"url": url, **body}, headers=headers, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


@dataclass
class Scenario:
    secrets: dict[str, str]  # path -> signing secret
    expected: dict[str, str]  # webhook id -> event type: what must arrive at every endpoint of tenant A
    optional: set[str]  # may also arrive (the original's own duplicate verdict, if checked after its copy)
    healthy: Receiver
    slow: Receiver
    down: Receiver
    down_until: float  # time.time() the down receiver started listening

    def ids(self, arrivals: list[Arrival]) -> set[str]:
        return {a.webhook_id for a in arrivals}


@pytest.fixture(scope="module")
def scenario(stack: object, media_root: Path) -> Iterator[Scenario]:
    healthy = Receiver(HEALTHY_PORT).start()
    slow = Receiver(SLOW_PORT, plan=lambda _path, _n: (200, SLOW_S, {})).start()
    down: Receiver | None = None
    try:
        secrets = {
            "/healthy": _endpoint(healthy.url("/healthy"))["secret"],
            "/failed-only": _endpoint(healthy.url("/failed-only"), event_types=["video.failed"])["secret"],
            "/slow": _endpoint(slow.url("/slow"))["secret"],
            "/down": _endpoint(f"http://127.0.0.1:{DOWN_PORT}/down")["secret"],  # nothing listens there yet
            "/tenant-b": _endpoint(healthy.url("/tenant-b"), headers=B)["secret"],
        }
        gone = _endpoint(healthy.url("/deleted"))
        assert httpx.delete(f"{GATEWAY_URL}/v1/webhooks/{gone['id']}", headers=A).status_code == 204

        folder = media_root / "webhooks"
        original = write_world_clip(folder / "original.mp4", [SCENE, SCENE], scene_s=3.0, seed=901)
        copy = folder / "copy.mp4"
        shutil.copyfile(original, copy)
        broken = folder / "broken.mp4"
        broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x17" * 4000)

        first = _register(original, title="original", metadata={"prompt": SCENE.caption})
        assert _wait_for(first["event_id"], A, {"indexed", "failed"})["stage"] == "indexed"
        second, bad = _register(copy, title="copy"), _register(broken, title="broken")
        assert _wait_for(second["event_id"], A, {"indexed", "failed"})["stage"] == "indexed"
        assert _wait_for(bad["event_id"], A, {"indexed", "failed"})["stage"] == "failed"
        duplicate = webhook_id("video.duplicate", second["video_id"], second["event_id"])
        arrived = healthy.wait_ids("/healthy", {duplicate}, 60)  # the copy was found: now the original may go
        assert duplicate in {a.webhook_id for a in arrived}
        deleted = httpx.delete(f"{GATEWAY_URL}/v1/videos/{first['video_id']}", headers=A, timeout=30)
        assert deleted.status_code == 202, deleted.text
        assert _wait_for(first["event_id"], A, {"deleted", "superseded"})["stage"] == "deleted"

        expected = {
            webhook_id("video.indexed", first["video_id"], first["event_id"]): "video.indexed",
            webhook_id("video.qc", first["video_id"], first["event_id"]): "video.qc",
            webhook_id("video.indexed", second["video_id"], second["event_id"]): "video.indexed",
            duplicate: "video.duplicate",
            webhook_id("video.failed", bad["video_id"], bad["event_id"]): "video.failed",
            webhook_id("video.deleted", first["video_id"], deleted.json()["event_id"]): "video.deleted",
        }
        optional = {webhook_id("video.duplicate", first["video_id"], first["event_id"])}
        healthy.wait_ids("/healthy", set(expected), 60)
        slow.wait_ids("/slow", set(expected), 60)

        time.sleep(DOWN_AFTER_S)  # the receiver comes back once every event was delivered elsewhere, and retried
        down = Receiver(DOWN_PORT).start()
        down_until = time.time()
        down.wait_ids("/down", set(expected), 60)
        time.sleep(2)  # anything more that was going to come (a duplicate) has come
        yield Scenario(secrets, expected, optional, healthy, slow, down, down_until)
    finally:
        for receiver in (healthy, slow, down):
            if receiver is not None:
                receiver.stop()
        for headers in (A, B):  # leave no endpoint behind for the rest of the session
            listed = httpx.get(f"{GATEWAY_URL}/v1/webhooks", headers=headers, timeout=30)
            for item in listed.json()["items"] if listed.status_code == 200 else []:
                httpx.delete(f"{GATEWAY_URL}/v1/webhooks/{item['id']}", headers=headers, timeout=30)


def _check_signed(arrivals: list[Arrival], secret: str, expected: dict[str, str]) -> None:
    for arrival in arrivals:
        payload = arrival.verified(secret)
        assert payload is not None, f"bad signature on {arrival.webhook_id}"
        if arrival.webhook_id in expected:
            assert payload["type"] == expected[arrival.webhook_id]


def _latency_s(arrival: Arrival) -> float:
    """From the outcome being recorded (the payload's timestamp) to the request reaching the receiver."""
    payload = httpx.Response(200, content=arrival.body).json()
    return arrival.wall - datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00")).timestamp()


def test_a_healthy_receiver_gets_every_outcome_signed(scenario: Scenario) -> None:
    arrivals = scenario.healthy.at("/healthy")
    got = scenario.ids(arrivals)
    assert set(scenario.expected) <= got <= set(scenario.expected) | scenario.optional
    _check_signed(arrivals, scenario.secrets["/healthy"], scenario.expected)
    first = {a.webhook_id: a for a in reversed(arrivals)}
    deleted = next(i for i, t in scenario.expected.items() if t == "video.deleted")
    assert httpx.Response(200, content=first[deleted].body).json()["data"]["deleted_at"]
    # an endpoint gets only the types it subscribed to; a deleted endpoint gets nothing
    failed_only = scenario.healthy.at("/failed-only")
    assert {a.webhook_id for a in failed_only} == {i for i, t in scenario.expected.items() if t == "video.failed"}
    _check_signed(failed_only, scenario.secrets["/failed-only"], scenario.expected)
    failure = httpx.Response(200, content=failed_only[0].body).json()["data"]
    assert failure["reason"] and failure["service"] == "decoder"
    assert scenario.healthy.at("/deleted") == []


def test_a_receiver_that_was_down_gets_every_event_once_it_is_back(scenario: Scenario) -> None:
    arrivals = scenario.down.at("/down")
    assert scenario.ids(arrivals) == scenario.ids(scenario.healthy.at("/healthy"))  # the same set, exactly
    _check_signed(arrivals, scenario.secrets["/down"], scenario.expected)  # re-signed at each attempt
    for arrival in arrivals:  # a repeat is only ever the same event: same id, same bytes
        assert arrival.body == next(a.body for a in arrivals if a.webhook_id == arrival.webhook_id)
    # it really was down: every event had happened before it listened
    assert all(a.wall < scenario.down_until for a in scenario.healthy.at("/healthy"))


def test_a_slow_receiver_does_not_delay_a_healthy_one(scenario: Scenario) -> None:
    slow = scenario.slow.at("/slow")
    firsts = {a.webhook_id: a for a in reversed(scenario.healthy.at("/healthy"))}
    latency = {webhook: round(_latency_s(a), 2) for webhook, a in firsts.items()}
    print("healthy latencies s:", sorted(latency.values()), "slow:", sorted(round(_latency_s(a), 2) for a in slow))
    assert max(latency.values()) < SLOW_S * 0.8, latency  # each was there well within one slow answer
    # and they came while the slow receiver was holding requests: it was busy, not idle, meanwhile
    during = [h for h in firsts.values() if any(s.at < h.at < s.at + SLOW_S for s in slow)]
    assert len(during) >= 2, "the slow receiver was never busy while the healthy one got events"
    assert scenario.ids(slow) == set(firsts)  # and it got them all in the end
    _check_signed(slow, scenario.secrets["/slow"], scenario.expected)


def test_another_tenants_endpoint_gets_nothing_of_this_tenant(scenario: Scenario) -> None:
    assert scenario.healthy.at("/tenant-b") == []
    listed = httpx.get(f"{GATEWAY_URL}/v1/webhooks", headers=B, timeout=10).json()["items"]
    assert [e["url"] for e in listed] == [scenario.healthy.url("/tenant-b")]
    mine = httpx.get(f"{GATEWAY_URL}/v1/webhooks", headers=A, timeout=10)
    assert len(mine.json()["items"]) == 4 and "whsec_" not in mine.text
    assert httpx.get(f"{GATEWAY_URL}/v1/webhooks/{listed[0]['id']}", headers=A, timeout=10).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{other_port}/x",  # a port outside the allowlist
        "http://localhost:{port}/x",
        "http://user:pw@127.0.0.1:{port}/x",
        "http://169.254.169.254/latest/meta-data/",
    ],
)  # ports filled in at run time: test ids are the same on every xdist worker, whose ports differ
def test_receiver_urls_outside_the_allowlist_are_refused(stack: object, url: str) -> None:
    url = url.format(port=HEALTHY_PORT, other_port=HEALTHY_PORT + 10)
    response = httpx.post(f"{GATEWAY_URL}/v1/webhooks", json={"url": url}, headers=A, timeout=30)
    assert response.status_code == 422 and response.json()["reason"] == "url_not_allowed", response.text
