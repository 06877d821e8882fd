"""The gateway's front door against the real stack: every 202 kept through a broker outage, parameters checked
before bytes are stored, idempotency shared by replicas through Kafka, read-your-writes across replicas,
listings and batches."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from services.common.messages import Topics, VideoUploaded, video_id_for
from services.intake.registration import event_id_for
from services.intake.watch import UploadWatch
from services.media.synthetic import write_clip
from services.stack import manager
from services.stack.kafka import start_kafka
from services.stack.process import Proc, http_ok
from services.stack.settings import StackSettings
from tests.integration.conftest import GATEWAY_URL, S3_URL, SEARCH_URL, TEST_ENV, port
from tests.ledger import TopicTap

DOOR = {"Authorization": "Bearer gw-key-door"}
CHAOS = {"Authorization": "Bearer gw-key-chaos"}
LIST = {"Authorization": "Bearer gw-key-list"}
SECOND_PORT = port(28091)
SECOND_URL = f"http://127.0.0.1:{SECOND_PORT}"


def _s3() -> Any:
    return boto3.client(
        "s3",
        endpoint_url=S3_URL,
        region_name="us-east-1",
        aws_access_key_id=TEST_ENV["CLIPSTREAM_STACK_S3_ACCESS_KEY"],
        aws_secret_access_key=TEST_ENV["CLIPSTREAM_STACK_S3_SECRET_KEY"],
    )


def _objects(tenant: str) -> set[str]:
    listed = _s3().list_objects_v2(Bucket="uploads", Prefix=f"gateway/{tenant}/")
    return {o["Key"] for o in listed.get("Contents", [])}


def _wait_stage(url: str, event_id: str, headers: dict[str, str], stages: set[str], timeout_s: float = 180) -> dict:
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/v1/uploads/{event_id}", headers=headers, timeout=10)
        if response.status_code == 200:
            body = response.json()
            if body["stage"] in stages:
                return body
        time.sleep(0.3)
    raise AssertionError(f"{event_id} never reached {stages}: {body}")


@pytest.fixture(scope="module")
def clip(stack: object, media_root: Path) -> Path:
    return write_clip(media_root / "door" / "clip.mp4", seconds=2.0, size=(160, 90), seed=411)


@pytest.fixture(scope="module")
def second_gateway(stack: StackSettings) -> Any:
    """A second gateway replica (the chart runs two): sharing nothing with the first but Kafka and the store."""
    proc = Proc("gateway-2", stack.run_dir)
    proc.start([sys.executable, "-m", "services.gateway"], env={"CLIPSTREAM_GATEWAY_PORT": str(SECOND_PORT)})
    deadline = time.monotonic() + 90
    while not http_ok(f"{SECOND_URL}/readyz") and time.monotonic() < deadline:
        time.sleep(0.3)
    assert http_ok(f"{SECOND_URL}/readyz"), proc.log_file.read_text()[-2000:]
    yield proc
    proc.stop()


# ---- validate, then store ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"filename": "a.mp4", "tags": "bad!tag"},
        {"filename": "a.mp4", "title": "映" * 600},  # 1,800 UTF-8 bytes: over the 1,024-byte title
        {"filename": "a.mp4", "creator": "x" * 300},
        {"filename": "a.mp4", "metadata": '{"k": {"nested": 1}}'},
    ],
)
def test_every_parameter_is_checked_before_a_byte_is_stored(stack: object, params: dict[str, str]) -> None:
    before = _objects("gw-door")
    response = httpx.post(
        f"{GATEWAY_URL}/v1/videos/upload", params=params, content=b"\0" * 4096, headers=DOOR, timeout=60
    )
    assert response.status_code == 422, response.text
    assert _objects("gw-door") == before  # nothing stored, nothing orphaned


def test_the_page_uploads_through_the_gateway_and_the_video_becomes_searchable(stack: object, media_root: Path) -> None:
    """The README's stack serves uploads out of the box: the page's upload button, in Chromium, stores the
    bytes in the local object store through the gateway, and the decoder may read them back."""
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    assert chromium.exists(), "Debian chromium is not installed (scripts/bootstrap.sh installs it)"
    clip = write_clip(media_root / "page" / "from_the_page.mp4", seconds=2.0, size=(160, 90), seed=417)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(SEARCH_URL + "/")
        page.fill("#key", "key-page")
        page.dispatch_event("#key", "change")
        page.wait_for_selector("#uploadForm:not([hidden])", timeout=30_000)
        page.set_input_files("#upload", str(clip))
        page.wait_for_selector("#uploadStatus[data-stage='indexed']", timeout=240_000)
        page.fill("#q", "anything at all")
        page.click("button[type=submit]")
        page.wait_for_selector("#results .card", timeout=30_000)
        video_id = page.locator(".card").first.get_attribute("data-video-id")
        browser.close()
    stored = _objects("page")
    assert len(stored) == 1 and next(iter(stored)).endswith("/from_the_page.mp4"), stored
    assert video_id == video_id_for("page", f"s3://uploads/{next(iter(stored))}")


def test_an_upload_the_decoder_would_refuse_leaves_nothing_behind(stack: object) -> None:
    before = _objects("gw-door")
    response = httpx.post(
        f"{GATEWAY_URL}/v1/videos/upload", params={"filename": "empty.mp4"}, content=b"", headers=DOOR
    )
    assert response.status_code == 422 and response.json()["reason"] == "empty_file", response.text
    assert _objects("gw-door") == before


def test_a_retried_keyed_upload_stores_once_and_replays_its_uri(clip: Path) -> None:
    data = clip.read_bytes()
    headers = {**DOOR, "Idempotency-Key": "upload-retry-1", "Content-Type": "video/mp4"}
    started = time.monotonic()
    first = httpx.post(
        f"{GATEWAY_URL}/v1/videos/upload", params={"filename": "r.mp4"}, content=data, headers=headers, timeout=60
    )
    print(f"keyed upload answered in {time.monotonic() - started:.2f} s")
    assert first.status_code == 202, first.text
    stored = _objects("gw-door")
    second = httpx.post(
        f"{GATEWAY_URL}/v1/videos/upload", params={"filename": "r.mp4"}, content=data, headers=headers, timeout=60
    )
    assert second.status_code == 202, second.text
    assert second.json() == first.json() | {"replayed": True}
    assert second.json()["uri"].startswith("s3://uploads/gateway/gw-door/")
    assert _objects("gw-door") == stored  # the retry stored nothing new
    # the same key with another payload is a client bug: 422, never the first answer
    other = httpx.post(
        f"{GATEWAY_URL}/v1/videos/upload",
        params={"filename": "r.mp4", "title": "other"},
        content=data,
        headers=headers,
        timeout=60,
    )
    assert other.status_code == 422 and other.json()["reason"] == "idempotency_key_reused", other.text


def test_a_form_upload_is_parsed_and_other_bodies_are_415(clip: Path) -> None:
    data = clip.read_bytes()
    response = httpx.post(
        f"{GATEWAY_URL}/v1/videos/upload",
        files={"file": ("form clip.mp4", data, "video/mp4")},
        data={"title": "from a form", "tags": ["form"]},
        headers=DOOR,
        timeout=60,
    )
    assert response.status_code == 202, response.text
    uri = response.json()["uri"]
    assert uri.endswith("/form_clip.mp4")
    stored = _s3().get_object(Bucket="uploads", Key=uri.removeprefix("s3://uploads/"))["Body"].read()
    assert stored == data  # the video's bytes, not the form's envelope
    assert _wait_stage(GATEWAY_URL, response.json()["event_id"], DOOR, {"indexed", "failed"})["stage"] == "indexed"
    for content_type in ("application/json", "text/plain", "application/x-www-form-urlencoded"):
        refused = httpx.post(
            f"{GATEWAY_URL}/v1/videos/upload",
            params={"filename": "a.mp4"},
            content=b"{}",
            headers={**DOOR, "Content-Type": content_type},
            timeout=60,
        )
        assert refused.status_code == 415, (content_type, refused.text)


# ---- idempotency across replicas, read-your-writes ------------------------------------------------------


def test_two_replicas_racing_on_one_key_publish_one_event(
    stack: StackSettings, common: object, clip: Path, second_gateway: Any
) -> None:
    tap = TopicTap(common)  # type: ignore[arg-type]
    keys = [f"race-{i}" for i in range(8)]
    body = {"uri": clip.resolve().as_uri(), "title": "raced"}

    def post(url: str, key: str) -> httpx.Response:
        return httpx.post(f"{url}/v1/videos", json=body, headers={**DOOR, "Idempotency-Key": key}, timeout=60)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda a: post(*a), [(u, k) for k in keys for u in (GATEWAY_URL, SECOND_URL)]))
    assert all(a.status_code == 202 for a in answers), [a.text for a in answers if a.status_code != 202]
    event_ids = {str(event_id_for("gw-door", k)) for k in keys}
    by_key = Counter(a.json()["event_id"] for a in answers)
    assert set(by_key) == event_ids and set(by_key.values()) == {2}
    assert all(a.json()["uri"] == body["uri"] for a in answers)  # a replayed answer carries its uri
    ledger = tap.read(event_ids | set(), settle_s=3.0)
    assert {e: ledger.count(Topics.UPLOADED, e) for e in event_ids} == dict.fromkeys(event_ids, 1)
    # a replica killed and started again (its memory gone) replays from Kafka, with the uri
    pid = manager.service_pid(stack, "gateway")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # its supervisor starts it again, as Kubernetes would
    deadline = time.monotonic() + 90
    while manager.service_pid(stack, "gateway") in (None, pid) or not http_ok(f"{GATEWAY_URL}/readyz"):
        assert time.monotonic() < deadline, "the gateway did not come back"
        time.sleep(0.3)
    again = post(GATEWAY_URL, keys[0])
    assert again.status_code == 202 and again.json()["replayed"] and again.json()["uri"] == body["uri"]
    assert tap.read(event_ids).count(Topics.UPLOADED, event_id_for("gw-door", keys[0]) or "") == 1


def test_right_after_a_202_every_replica_reads_the_upload_and_can_delete_it(
    media_root: Path, second_gateway: Any
) -> None:
    for i in range(5):
        path = write_clip(media_root / "door" / f"ryw-{i}.mp4", seconds=1.0, size=(160, 90), seed=500 + i)
        accepted = httpx.post(
            f"{GATEWAY_URL}/v1/videos", json={"uri": path.resolve().as_uri()}, headers=DOOR, timeout=60
        )
        assert accepted.status_code == 202, accepted.text
        event_id, video_id = accepted.json()["event_id"], accepted.json()["video_id"]
        for url in (GATEWAY_URL, SECOND_URL):  # at once, on the replica that took it and on the other
            seen = httpx.get(f"{url}/v1/uploads/{event_id}", headers=DOOR, timeout=10)
            assert seen.status_code == 200, (url, seen.text)
            assert seen.json()["stage"] in {"registered", "probed", "indexing", "indexed"}
        deleted = httpx.delete(f"{SECOND_URL}/v1/videos/{video_id}", headers=DOOR, timeout=30)
        assert deleted.status_code == 202, deleted.text
    unknown = httpx.get(f"{SECOND_URL}/v1/uploads/never-registered", headers=DOOR, timeout=10)
    assert unknown.status_code == 404  # a true 404: the view synced with Kafka's ends before saying so


# ---- listings and batches -----------------------------------------------------------------------------


def test_batches_answer_per_item_and_listings_page_with_cursors(stack: object, media_root: Path) -> None:
    good = [write_clip(media_root / "list" / f"l{i}.mp4", seconds=1.0, size=(160, 90), seed=600 + i) for i in range(3)]
    bad = media_root / "list" / "not-a-video.mp4"
    bad.write_bytes(b"nope" * 64)
    items = [{"uri": p.resolve().as_uri(), "title": f"listed {i}"} for i, p in enumerate(good)]
    items += [{"uri": "file:///etc/passwd"}, {"uri": bad.resolve().as_uri(), "idempotency_key": "batch-bad"}]
    response = httpx.post(f"{GATEWAY_URL}/v1/videos/batch", json={"items": items}, headers=LIST, timeout=60)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [202, 202, 202, 422, 202]
    assert results[3]["reason"] == "source_not_allowed" and results[3]["registered"] is None
    events = [r["registered"]["event_id"] for r in results if r["registered"]]
    for event_id in events:
        _wait_stage(GATEWAY_URL, event_id, LIST, {"indexed", "failed"})
    # every video once across pages of one, newest upload first
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = httpx.get(f"{GATEWAY_URL}/v1/videos", params=params, headers=LIST, timeout=10).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(s["event_id"] for s in seen) == sorted(events)
    assert [s["uploaded_at"] for s in seen] == sorted((s["uploaded_at"] for s in seen), reverse=True)
    failed = httpx.get(f"{GATEWAY_URL}/v1/uploads", params={"stage": "failed"}, headers=LIST, timeout=10).json()
    assert [s["event_id"] for s in failed["items"]] == [results[4]["registered"]["event_id"]]
    assert failed["items"][0]["reason"] == "not_a_video"
    other = httpx.get(f"{GATEWAY_URL}/v1/videos", headers=DOOR, timeout=10).json()["items"]
    assert not {s["event_id"] for s in other} & set(events)  # another tenant's listing never shows them
    assert httpx.get(f"{GATEWAY_URL}/v1/videos", params={"cursor": "garbage"}, headers=LIST).status_code == 400


# ---- every 202 kept through a broker outage ---------------------------------------------------------------


@pytest.mark.chaos
def test_every_202_is_indexed_once_when_the_broker_is_down_longer_than_the_publish_timeout(
    stack: StackSettings, common: object, media_root: Path
) -> None:
    """16 clients register at ~8/s (half with Idempotency-Keys, half without) while the broker is killed for
    longer than the publish timeout (10 s in the test session) and restarted: every 202 is indexed exactly
    once; a 503 is either never published or indexed once under its own event."""
    folder = media_root / "door-chaos"
    base = write_clip(folder / "base.mp4", seconds=1.0, size=(160, 90), seed=711)
    count, down_s = 64, 14.0  # the restart adds its own start-up time to the outage
    paths = []
    for i in range(count):
        path = folder / f"c{i:03d}.mp4"
        os.link(base, path)  # a distinct source (and video id) each, one file's bytes
        paths.append(path)
    watch = UploadWatch(common)  # type: ignore[arg-type]
    tap = TopicTap(common)  # type: ignore[arg-type]
    answers: dict[int, int] = {}
    accepted: dict[int, str] = {}

    def register(i: int) -> None:
        headers = {**CHAOS, "Idempotency-Key": f"chaos-{i}"} if i % 2 else CHAOS
        try:
            response = httpx.post(
                f"{GATEWAY_URL}/v1/videos", json={"uri": paths[i].as_uri()}, headers=headers, timeout=60
            )
        except httpx.TransportError:
            answers[i] = 0
            return
        answers[i] = response.status_code
        if response.status_code == 202:
            accepted[i] = response.json()["event_id"]

    def strike() -> None:
        time.sleep(3.0)
        kafka = Proc("kafka", stack.run_dir)
        pid = kafka.pid()
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)
        while kafka.running():
            time.sleep(0.05)
        time.sleep(down_s)
        start_kafka(stack)

    striker = threading.Thread(target=strike)
    striker.start()
    with ThreadPoolExecutor(16) as pool:
        for i in range(count):
            pool.submit(register, i)
            time.sleep(0.125)
    striker.join()
    refused = {i for i, status in answers.items() if status != 202}
    print(
        f"\ngateway under a {down_s:.0f}-s broker outage: {len(accepted)} answered 202, {len(refused)} not "
        f"({Counter(answers.values())})"
    )
    assert accepted, "nothing was accepted"
    assert refused, "the outage never reached a request: the test proved nothing"
    # what a refused request left behind: nothing, or one upload (indexed once under its own event)
    uploaded = [VideoUploaded.model_validate_json(v) for v in tap.values(Topics.UPLOADED)]
    by_video = Counter(u.video_id for u in uploaded if u.tenant == "gw-chaos")
    ids = {i: video_id_for("gw-chaos", paths[i].as_uri()) for i in range(count)}
    assert all(by_video[ids[i]] == 1 for i in accepted), "an accepted upload was not published exactly once"
    assert all(by_video[ids[i]] <= 1 for i in refused), "a refused upload was published twice"
    refused_ids = {ids[i] for i in refused}
    landed = {u.event_id for u in uploaded if u.tenant == "gw-chaos" and u.video_id in refused_ids}
    print(f"of the {len(refused)} refused, {len(landed)} landed later (each must be indexed once)")
    outcomes = watch.wait(set(accepted.values()) | landed, 300)
    missing = set(accepted.values()) - set(outcomes.indexed)
    failed = {e: d.reason for e, d in outcomes.failed.items()}
    assert not missing, f"{len(missing)} accepted uploads never indexed; failed: {failed}"
    assert landed <= set(outcomes.indexed), f"refused uploads that landed were not indexed; failed: {failed}"
    ledger = tap.read(set(accepted.values()) | landed)
    assert not ledger.duplicates(), ledger.duplicates()
    assert all(ledger.count(Topics.INDEXED, e) == 1 for e in accepted.values())
