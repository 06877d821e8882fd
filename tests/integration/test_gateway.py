"""The upload gateway over HTTP, against the real stack: registrations and uploads become searchable, the
status the pipeline publishes answers "where is my upload?", and bad requests get precise 4xx answers."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from confluent_kafka import Producer

from services.common.filters import Filters
from services.common.messages import Topics
from services.common.settings import CommonSettings
from services.common.vectors import VIDEOS_ALIAS, SegmentStore
from services.intake.registration import video_id_for
from services.media.synthetic import write_clip
from services.search.engine import SearchEngine
from services.search.settings import SearchSettings
from tests.integration.conftest import GATEWAY_URL
from tests.ledger import TopicTap

A, B = {"Authorization": "Bearer gw-key-a"}, {"X-API-Key": "gw-key-b"}  # tenants gw-a, gw-b: their own
TIMEOUT_S = 180


def _status(event_id: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{GATEWAY_URL}/v1/uploads/{event_id}", headers=headers, timeout=10)


def _wait_for(event_id: str, headers: dict[str, str], stages: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    seen: list[str] = []
    while time.monotonic() < deadline:
        response = _status(event_id, headers)
        if response.status_code == 200:
            body = response.json()
            if not seen or seen[-1] != body["stage"]:
                seen.append(body["stage"])
            if body["stage"] in stages:
                return body | {"seen": seen}
        time.sleep(0.3)
    raise AssertionError(f"{event_id} never reached {stages}; seen {seen}")


@pytest.fixture(scope="module")
def clips(media_root: Path) -> dict[str, Path]:
    folder = media_root / "gateway"
    return {
        "registered": write_clip(folder / "registered.mp4", seconds=6.0, size=(320, 180), seed=301, cuts=(3.0,)),
        "uploaded": write_clip(folder / "uploaded.mp4", seconds=6.0, size=(320, 180), seed=302, cuts=(3.0,)),
        "shared": write_clip(folder / "shared.mp4", seconds=4.0, size=(320, 180), seed=303),
    }


@pytest.fixture(scope="module")
def engine(stack: object) -> SearchEngine:
    return SearchEngine(SearchSettings())


def test_an_http_registration_becomes_searchable_and_reports_each_stage(
    clips: dict[str, Path], engine: SearchEngine
) -> None:
    uri = clips["registered"].resolve().as_uri()
    free = {"lang": "en", "season": 3, "licensed": True, "ratio": 1.5}
    body = {"uri": uri, "title": "registered over http", "creator": "gw", "tags": ["gateway"], "metadata": free}
    response = httpx.post(f"{GATEWAY_URL}/v1/videos", json=body, headers=A, timeout=30)
    assert response.status_code == 202, response.text
    registered = response.json()
    assert registered["video_id"] == video_id_for("gw-a", uri)  # the tenant comes from the key
    final = _wait_for(registered["event_id"], A, {"indexed", "failed"})
    assert final["stage"] == "indexed", final
    assert final["segments_indexed"] == final["segment_count"] == 2
    assert final["seen"][-1] == "indexed"
    by_video = httpx.get(f"{GATEWAY_URL}/v1/videos/{registered['video_id']}/status", headers=A, timeout=10)
    assert by_video.json()["event_id"] == registered["event_id"]
    hits = engine.by_text("a scene", limit=50, filters=Filters(tenant="gw-a", creator="gw"))
    assert registered["video_id"] in [h.video_id for h in hits]
    # free metadata is stored as given and filterable by each key, types kept ("3" is not 3)
    assert next(h for h in hits if h.video_id == registered["video_id"]).fields["metadata"] == free
    assert registered["video_id"] in _search_ids(engine, tenant="gw-a", metadata=free)
    for other in ({"lang": "de"}, {"season": "3"}, {"licensed": False}, {"nope": "en"}):
        assert registered["video_id"] not in _search_ids(engine, tenant="gw-a", metadata=other), other
    # another tenant cannot see it
    assert _status(registered["event_id"], B).status_code == 404
    assert httpx.get(f"{GATEWAY_URL}/v1/videos/{registered['video_id']}/status", headers=B).status_code == 404


def test_a_retried_registration_registers_once(common: CommonSettings, clips: dict[str, Path]) -> None:
    tap = TopicTap(common)
    body = {"uri": clips["shared"].resolve().as_uri()}
    headers = {**A, "Idempotency-Key": "retry-me-1"}
    first = httpx.post(f"{GATEWAY_URL}/v1/videos", json=body, headers=headers, timeout=30)
    second = httpx.post(f"{GATEWAY_URL}/v1/videos", json=body, headers=headers, timeout=30)
    assert first.status_code == second.status_code == 202
    assert first.json()["event_id"] == second.json()["event_id"]
    assert (first.json()["replayed"], second.json()["replayed"]) == (False, True)
    _wait_for(first.json()["event_id"], A, {"indexed"})
    assert tap.read({first.json()["event_id"]}).count(Topics.UPLOADED, first.json()["event_id"]) == 1


def test_the_same_uri_from_two_tenants_is_two_videos(clips: dict[str, Path]) -> None:
    body = {"uri": clips["shared"].resolve().as_uri()}
    a = httpx.post(f"{GATEWAY_URL}/v1/videos", json=body, headers=A, timeout=30).json()
    b = httpx.post(f"{GATEWAY_URL}/v1/videos", json=body, headers=B, timeout=30).json()
    assert a["video_id"] != b["video_id"]
    assert _wait_for(a["event_id"], A, {"indexed"})["stage"] == "indexed"
    assert _wait_for(b["event_id"], B, {"indexed"})["stage"] == "indexed"
    assert _status(a["event_id"], B).status_code == 404


def test_an_upload_streams_into_the_object_store_and_becomes_searchable(
    clips: dict[str, Path], engine: SearchEngine
) -> None:
    data = clips["uploaded"].read_bytes()

    def chunks() -> Iterator[bytes]:  # a chunked body: no Content-Length, as a streaming client sends it
        for i in range(0, len(data), 64 * 1024):
            yield data[i : i + 64 * 1024]

    response = httpx.post(
        f"{GATEWAY_URL}/v1/videos/upload",
        params={"filename": "../../etc/My Clip.mp4", "creator": "uploader", "metadata": '{"camera": "drone"}'},
        content=chunks(),
        headers={**B, "Content-Type": "video/mp4"},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    uploaded = response.json()
    assert uploaded["uri"].startswith("s3://uploads/gateway/gw-b/") and uploaded["uri"].endswith("/My_Clip.mp4")
    assert _wait_for(uploaded["event_id"], B, {"indexed", "failed"})["stage"] == "indexed"
    hits = engine.by_text("a scene", limit=50, filters=Filters(tenant="gw-b", creator="uploader"))
    assert [h.video_id for h in hits] == [uploaded["video_id"]]
    assert _search_ids(engine, tenant="gw-b", metadata={"camera": "drone"}) == {uploaded["video_id"]}


@pytest.mark.parametrize("metadata", ['{"bad key": 1}', '{"a": [1]}', "not json", '{"a": "' + "x" * 600 + '"}'])
def test_an_upload_with_bad_metadata_is_refused_before_a_byte_is_stored(common: CommonSettings, metadata: str) -> None:
    response = httpx.post(
        f"{GATEWAY_URL}/v1/videos/upload",
        params={"filename": "never-stored.mp4", "metadata": metadata},
        content=b"\x00" * 1024,
        headers=A,
        timeout=30,
    )
    assert response.status_code == 422, response.text
    assert "metadata" in response.text or "json" in response.text.lower()


def test_an_oversize_upload_is_refused_while_it_streams(common: CommonSettings) -> None:
    sent = 0

    def endless() -> Iterator[bytes]:
        nonlocal sent
        block = b"\0" * (1024 * 1024)
        for _ in range(64):  # 64 MiB offered, the limit is 8 MiB
            sent += len(block)
            yield block

    try:
        response = httpx.post(
            f"{GATEWAY_URL}/v1/videos/upload", params={"filename": "big.mp4"}, content=endless(), headers=A, timeout=60
        )
        assert response.status_code == 413, response.text
    except httpx.TransportError:
        # the gateway answered 413 and closed the connection while the client was still sending
        assert sent < 64 * 1024 * 1024
    # a declared length over the limit is answered from the headers, before any of the body is sent
    url = urlsplit(GATEWAY_URL)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    conn.putrequest("POST", "/v1/videos/upload?filename=big.mp4")
    for name, value in {**A, "Content-Length": str(9 * 1024**2), "Content-Type": "video/mp4"}.items():
        conn.putheader(name, value)
    conn.endheaders()
    declared = conn.getresponse()
    assert declared.status == 413, declared.read()
    conn.close()


def test_a_video_that_cannot_be_decoded_reports_failed_with_its_reason(media_root: Path) -> None:
    bad = media_root / "gateway" / "not-a-video.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    response = httpx.post(f"{GATEWAY_URL}/v1/videos", json={"uri": bad.resolve().as_uri()}, headers=A, timeout=30)
    assert response.status_code == 202
    final = _wait_for(response.json()["event_id"], A, {"indexed", "failed"})
    assert final["stage"] == "failed" and final["reason"], final


@pytest.mark.parametrize(
    ("body", "headers", "status", "needle"),
    [
        ({"uri": "file:///etc/passwd"}, A, 422, "outside the allowed roots"),
        ({"uri": "ftp://example.com/a.mp4"}, A, 422, "scheme"),
        ({"uri": "s3://uploads/elsewhere/a.mp4"}, A, 422, "no allowed prefix"),
        ({"uri": "file:///x.mp4", "tenant": "gw-b"}, A, 422, "extra"),  # the tenant is the key's, never the body's
        ({"title": "no uri"}, A, 422, "uri"),
        ({"uri": "file:///x.mp4", "tags": ["bad tag!"]}, A, 422, "tags"),
        ({"uri": "file:///x.mp4", "metadata": {"bad key": "v"}}, A, 422, "metadata"),
        ({"uri": "file:///x.mp4", "metadata": {"k": {"nested": 1}}}, A, 422, "metadata"),
        ({"uri": "file:///x.mp4", "metadata": {f"k{i}": i for i in range(17)}}, A, 422, "metadata"),
        ({"uri": "file:///x.mp4"}, {}, 401, "API key"),
        ({"uri": "file:///x.mp4"}, {"Authorization": "Bearer nope"}, 401, "API key"),
    ],
)
def test_bad_registrations_get_precise_4xx(
    stack: object, body: dict[str, object], headers: dict[str, str], status: int, needle: str
) -> None:
    response = httpx.post(f"{GATEWAY_URL}/v1/videos", json=body, headers=headers, timeout=30)
    assert response.status_code == status, response.text
    assert needle in response.text


def test_malformed_and_oversize_json_and_unknown_ids(stack: object) -> None:
    malformed = httpx.post(
        f"{GATEWAY_URL}/v1/videos", content=b"{not json", headers={**A, "Content-Type": "application/json"}
    )
    assert malformed.status_code == 422
    huge = httpx.post(f"{GATEWAY_URL}/v1/videos", json={"uri": "file:///x", "title": "x" * 200_000}, headers=A)
    assert huge.status_code == 413
    assert _status("no-such-event", A).status_code == 404
    assert httpx.get(f"{GATEWAY_URL}/v1/videos/vnope/status", headers=A).status_code == 404
    assert httpx.get(f"{GATEWAY_URL}/readyz").status_code == 200


def _search_ids(engine: SearchEngine, **filters: Any) -> set[str]:
    return {h.video_id for h in engine.by_text("a scene", limit=100, filters=Filters(**filters))}


def test_a_delete_removes_the_video_everywhere_and_a_late_message_does_not_bring_it_back(
    common: CommonSettings, media_root: Path, engine: SearchEngine
) -> None:
    clip = write_clip(media_root / "gateway" / "to-delete.mp4", seconds=6.0, size=(320, 180), seed=304, cuts=(3.0,))
    tap = TopicTap(common)
    registered = httpx.post(
        f"{GATEWAY_URL}/v1/videos", json={"uri": clip.resolve().as_uri(), "creator": "doomed"}, headers=A, timeout=30
    ).json()
    video_id = registered["video_id"]
    assert _wait_for(registered["event_id"], A, {"indexed"})["stage"] == "indexed"
    store = SegmentStore(common)
    ours = Filters(video_ids=[video_id]).compile()
    assert store.count(ours) == 2 and store.count(ours, collection=VIDEOS_ALIAS) == 1
    embeddings = tap.values(Topics.EMBEDDINGS)  # what was in flight for this upload, kept to replay late
    late = [v for v in embeddings if json.loads(v)["video_id"] == video_id]
    assert len(late) == 2

    assert httpx.delete(f"{GATEWAY_URL}/v1/videos/{video_id}", headers=B).status_code == 404  # not B's
    started = time.monotonic()
    response = httpx.delete(f"{GATEWAY_URL}/v1/videos/{video_id}", headers=A, timeout=30)
    assert response.status_code == 202, response.text
    while store.count(ours) or store.count(ours, collection=VIDEOS_ALIAS):
        assert time.monotonic() - started < 60, "the delete never reached the index"
        time.sleep(0.1)
    print(f"DELETE to unsearchable: {time.monotonic() - started:.2f}s")
    assert video_id not in _search_ids(engine, tenant="gw-a", creator="doomed")
    status = httpx.get(f"{GATEWAY_URL}/v1/videos/{video_id}/status", headers=A).json()
    deadline = time.monotonic() + 30
    while status["stage"] != "deleted" and time.monotonic() < deadline:
        time.sleep(0.3)
        status = httpx.get(f"{GATEWAY_URL}/v1/videos/{video_id}/status", headers=A).json()
    assert status["stage"] == "deleted"

    # the deleted upload's embeddings arrive late (a replay, a slow partition): they must not resurrect it
    producer = Producer({"bootstrap.servers": common.kafka_bootstrap})
    for value in late:
        producer.produce(Topics.EMBEDDINGS, key=video_id.encode(), value=value)
    producer.flush(10)
    until = time.monotonic() + 10
    while time.monotonic() < until:
        assert store.count(ours) == 0 and store.count(ours, collection=VIDEOS_ALIAS) == 0, "resurrected"
        time.sleep(0.25)
    ledger = tap.read({response.json()["event_id"], registered["event_id"]})
    assert ledger.count(Topics.REMOVED, response.json()["event_id"]) == 1
    assert ledger.count(Topics.SEGMENTS_INDEXED, registered["event_id"]) == 2, "the late copies are not acked"


def test_a_patch_changes_filter_results_without_new_embeddings(
    common: CommonSettings, media_root: Path, engine: SearchEngine
) -> None:
    clip = write_clip(media_root / "gateway" / "to-patch.mp4", seconds=4.0, size=(320, 180), seed=305)
    body = {
        "uri": clip.resolve().as_uri(),
        "creator": "before",
        "tags": ["old"],
        "title": "old title",
        "metadata": {"lang": "en", "rights": "cc-by", "kept": 1},
    }
    registered = httpx.post(f"{GATEWAY_URL}/v1/videos", json=body, headers=A, timeout=30).json()
    video_id = registered["video_id"]
    assert _wait_for(registered["event_id"], A, {"indexed"})["stage"] == "indexed"
    assert video_id in _search_ids(engine, tenant="gw-a", creator="before")
    tap = TopicTap(common)
    patch = {"creator": "after", "tags": ["fresh", "fixed"], "metadata": {"lang": "de", "rights": None, "ok": True}}
    assert httpx.patch(f"{GATEWAY_URL}/v1/videos/{video_id}", json=patch, headers=B).status_code == 404
    response = httpx.patch(f"{GATEWAY_URL}/v1/videos/{video_id}", json=patch, headers=A, timeout=30)
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 60
    while video_id not in _search_ids(engine, tenant="gw-a", creator="after"):
        assert time.monotonic() < deadline, "the patch never reached the index"
        time.sleep(0.2)
    assert video_id not in _search_ids(engine, tenant="gw-a", creator="before")
    assert video_id in _search_ids(engine, tenant="gw-a", tags=["fixed"])
    assert video_id in _search_ids(engine, tenant="gw-a", metadata={"lang": "de", "ok": True, "kept": 1})
    assert video_id not in _search_ids(engine, tenant="gw-a", metadata={"lang": "en"})
    assert video_id not in _search_ids(engine, tenant="gw-a", metadata={"rights": "cc-by"})  # null removed it
    video = SegmentStore(common).video(video_id)
    assert video is not None and video[0]["title"] == "old title"  # fields not in the patch stay
    assert video[0]["metadata"] == {"lang": "de", "kept": 1, "ok": True}
    assert all(s["metadata"] == video[0]["metadata"] for s in video[1])
    for topic in (Topics.SEGMENTS, Topics.EMBEDDINGS):
        assert not [v for v in tap.values(topic, settle_s=1.0) if json.loads(v)["video_id"] == video_id]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("DELETE", "/v1/videos/vnope", None, 404),
        ("PATCH", "/v1/videos/vnope", {"title": "x"}, 404),
        ("PATCH", "/v1/videos/vnope", {}, 422),
        ("PATCH", "/v1/videos/vnope", {"title": "x", "uri": "file:///x"}, 422),
        ("PATCH", "/v1/videos/vnope", {"metadata": {"1bad": "x"}}, 422),
    ],
)
def test_bad_deletes_and_patches(
    stack: object, method: str, path: str, body: dict[str, object] | None, status: int
) -> None:
    response = httpx.request(method, f"{GATEWAY_URL}{path}", json=body, headers=A, timeout=30)
    assert response.status_code == status, response.text
