"""How a remote source's failures are classified, each HTTP answer at the edge of its class: a server that is
down or overloaded is retried (`SourceUnavailable`, transient), one that says the object is gone, refuses
ranges or redirects is dead-lettered at once (`DecodeError`, permanent). A real HTTP server on loopback."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.errors import PermanentError, TransientError
from services.media.sources import SourcePolicy, open_source

BODY = bytes(range(256)) * 64


class Answers(http.server.BaseHTTPRequestHandler):
    """`/status/N`: every request answered N. `/then/N`: the probe of byte 0 is served, later reads answered N.
    `/ok`: ranges served. `/plain`: the whole body, ranges ignored."""

    def do_GET(self) -> None:
        kind, _, code = self.path.strip("/").partition("/")
        probe = self.headers.get("Range") == "bytes=0-0"
        if kind == "status" or (kind == "then" and not probe):
            self.send_response(int(code))
            if 300 <= int(code) < 400:
                self.send_header("Location", "http://elsewhere.example/x.mp4")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if kind == "plain":
            self._send(200, BODY, {})
            return
        start, _, end = self.headers["Range"].removeprefix("bytes=").partition("-")
        last = min(int(end), len(BODY) - 1)
        self._send(206, BODY[int(start) : last + 1], {"Content-Range": f"bytes {start}-{last}/{len(BODY)}"})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _read(url: str, base: str) -> bytes:
    with open_source(url, SourcePolicy(http_prefixes=[base], timeout_s=5)) as reader:
        assert not isinstance(reader, Path)
        return reader.read()


def test_a_source_that_serves_ranges_is_read_whole(base: str) -> None:
    assert _read(f"{base}ok", base) == BODY


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (408, "source_unavailable"),
        (429, "source_unavailable"),
        (500, "source_unavailable"),
        (503, "source_unavailable"),
    ],
)
def test_a_source_that_is_down_or_overloaded_is_retried(base: str, status: int, reason: str) -> None:
    with pytest.raises(TransientError) as err:
        _read(f"{base}status/{status}", base)
    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (401, "source_not_found"),
        (403, "source_not_found"),
        (404, "source_not_found"),
        (410, "source_not_found"),
        (400, "source_unreadable"),
        (407, "source_unreadable"),
        (428, "source_unreadable"),
        (499, "source_unreadable"),
        (302, "source_not_allowed"),
        (307, "source_not_allowed"),
    ],
)
def test_a_source_that_will_never_serve_the_object_is_dead_lettered(base: str, status: int, reason: str) -> None:
    with pytest.raises(PermanentError) as err:
        _read(f"{base}status/{status}", base)
    assert not isinstance(err.value, TransientError)
    assert err.value.reason == reason


def test_a_source_that_ignores_ranges_is_refused_before_its_body(base: str) -> None:
    with pytest.raises(PermanentError) as err:
        _read(f"{base}plain", base)
    assert err.value.reason == "source_unreadable"


def test_an_unreachable_source_is_retried(base: str) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/"
    with pytest.raises(TransientError) as err:
        _read(f"{closed}ok", closed)
    assert err.value.reason == "source_unreachable"


@pytest.mark.parametrize(("status", "transient"), [(429, True), (500, True), (503, True), (404, False), (499, False)])
def test_a_failure_in_the_middle_of_a_read_is_classified_like_the_first_answer(
    base: str, status: int, transient: bool
) -> None:
    with pytest.raises(TransientError if transient else PermanentError) as err:
        _read(f"{base}then/{status}", base)
    assert isinstance(err.value, TransientError) is transient
    assert err.value.reason == ("source_unavailable" if transient else "source_unreadable")
