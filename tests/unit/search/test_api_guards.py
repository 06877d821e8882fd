"""The search API refuses a request without a key, or with too large a body, before reading the body.

A real uvicorn server on a loopback port; no engine is built (a request that got past these checks would
need Triton and Milvus, and fail differently).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from services.common.errors import Misconfigured
from services.search.api import create_app
from services.search.settings import SearchSettings

LIMIT = 1024**2
MULTIPART = {"Content-Type": "multipart/form-data; boundary=x"}


class SlowEngine:
    """Stands in for the engine's blocking work (decode + embed) in the test of the event loop."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def by_video(self, *_: object) -> list[object]:
        self.release.wait(30)
        return []

    def by_text(self, *_: object) -> list[object]:
        raise Misconfigured("Triton serves m:1, the served collection needs m:2", reason="model_mismatch")


@pytest.fixture
def engine() -> SlowEngine:
    return SlowEngine()


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: SlowEngine) -> Iterator[str]:
    monkeypatch.setenv("CLIPSTREAM_HOME", str(tmp_path))
    app = create_app(SearchSettings(api_keys={"k": "t"}, max_upload_bytes=LIMIT), engine=engine)  # type: ignore[arg-type]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)


def _file_part(megabytes: int, sent: list[int]) -> Iterator[bytes]:
    """A multipart body with one large file part, streamed without a length."""
    yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="q.mp4"\r\n\r\n'
    for _ in range(megabytes * 16):
        sent[0] += 65536
        yield b"\0" * 65536


def test_no_key_is_refused_before_the_body_is_read(url: str) -> None:
    sent = [0]
    answer = httpx.post(f"{url}/v1/search/video", content=_file_part(8, sent), headers=MULTIPART, timeout=30)
    assert answer.status_code == 401
    assert httpx.post(f"{url}/v1/search/text", json={"query": "x"}, headers={"X-API-Key": "nope"}).status_code == 401


def test_oversized_bodies_are_refused_with_and_without_a_length(url: str) -> None:
    files = {"file": ("q.mp4", b"\0" * 2 * LIMIT)}
    sized = httpx.post(f"{url}/v1/search/video", headers={"X-API-Key": "k"}, files=files, timeout=30)
    assert sized.status_code == 413
    sent = [0]
    chunked = httpx.post(
        f"{url}/v1/search/video", content=_file_part(8, sent), headers={"X-API-Key": "k", **MULTIPART}, timeout=30
    )
    assert chunked.status_code == 413


def test_the_generated_key_is_kept_in_the_state_folder_and_never_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CLIPSTREAM_HOME", str(tmp_path))
    create_app(SearchSettings(api_keys={}))
    key = (tmp_path / "search-api-key").read_text().strip()
    assert len(key) >= 24 and (tmp_path / "search-api-key").stat().st_mode & 0o077 == 0
    assert key not in caplog.text and all(key not in str(r.__dict__) for r in caplog.records)


def test_health_answers_while_a_video_query_is_decoding(url: str, engine: SlowEngine) -> None:
    """Decoding and embedding run off the event loop: a query in flight does not hold up other requests."""
    finished: list[str] = []

    def query() -> None:
        files = {"file": ("q.mp4", b"\0" * 1000)}
        httpx.post(f"{url}/v1/search/video", headers={"X-API-Key": "k"}, files=files, timeout=60)
        finished.append("query")

    thread = threading.Thread(target=query)
    thread.start()
    try:
        time.sleep(0.5)  # the query is inside the engine by now
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        finished.append("health")
    finally:
        engine.release.set()
        thread.join(30)
    assert finished == ["health", "query"]


def test_the_services_own_errors_are_503_with_their_reason_not_500(url: str) -> None:
    answer = httpx.post(f"{url}/v1/search/text", json={"query": "x"}, headers={"X-API-Key": "k"}, timeout=10)
    assert answer.status_code == 503
    assert answer.json()["reason"] == "model_mismatch"
