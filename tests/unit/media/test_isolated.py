"""Decoding in the killable child: same results, precise errors across the boundary, a hard deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from services.media.decode import DecodeLimits, DecodeOptions, decode_video
from services.media.errors import DecodeError, SourceUnavailable
from services.media.isolated import IsolatedDecoder
from services.media.sources import RangeReader, SourcePolicy, open_source
from services.media.synthetic import write_clip
from tests import media


@pytest.fixture
def stalling_server() -> Iterator[str]:
    """Answers the first range request like a video host, then never sends another byte."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Range") == "bytes=0-0":
                self.send_response(206)
                self.send_header("Content-Range", "bytes 0-0/5000000")
                self.send_header("Content-Length", "1")
                self.end_headers()
                self.wfile.write(b"\x00")
                return
            release.wait(60)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v/"
    release.set()
    server.shutdown()


def test_child_decodes_like_the_caller_would(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", seconds=4.0, cuts=(2.0,))
    isolated = IsolatedDecoder(SourcePolicy(allowed_roots=[tmp_path]), DecodeOptions(), max_memory_bytes=0)
    try:
        remote = isolated.decode(clip.as_uri())
    finally:
        isolated.close()
    local = decode_video(clip, DecodeOptions())
    assert [(s.start_s, s.end_s) for s in remote.segments] == [(s.start_s, s.end_s) for s in local.segments]
    assert [k.jpeg for s in remote.segments for k in s.keyframes] == [
        k.jpeg for s in local.segments for k in s.keyframes
    ]


def test_errors_keep_their_reason_across_the_process_boundary(tmp_path: Path) -> None:
    isolated = IsolatedDecoder(SourcePolicy(allowed_roots=[tmp_path]), DecodeOptions(), max_memory_bytes=0)
    try:
        with pytest.raises(DecodeError) as err:
            isolated.decode(media.write_text(tmp_path / "notes.mp4").as_uri())
        assert err.value.reason == "not_a_video"
    finally:
        isolated.close()


def test_a_decode_that_never_returns_is_killed_and_the_next_one_runs(tmp_path: Path, stalling_server: str) -> None:
    options = DecodeOptions(limits=DecodeLimits(time_budget_s=1.0))
    policy = SourcePolicy(allowed_roots=[tmp_path], http_prefixes=[stalling_server], timeout_s=60.0)
    isolated = IsolatedDecoder(policy, options, max_memory_bytes=0, grace_s=2.0)
    try:
        isolated.decode(write_clip(tmp_path / "warm.mp4", seconds=1.0).as_uri())  # the child is up
        started = time.monotonic()
        with pytest.raises(DecodeError) as err:
            isolated.decode(stalling_server + "stuck.mp4")
        assert err.value.reason == "decode_timeout"
        assert time.monotonic() - started < 30  # the source's own 60 s timeout was not what ended it
        assert len(isolated.decode(write_clip(tmp_path / "next.mp4", seconds=1.0).as_uri()).segments) == 1
    finally:
        isolated.close()


@pytest.fixture
def dropping_server(tmp_path: Path) -> Iterator[str]:
    """Serves a real clip by ranges, then drops the connection on every read after the first few."""
    data = write_clip(tmp_path / "remote.mp4", seconds=8.0, size=(640, 360)).read_bytes()
    reads = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            start, _, end = (self.headers.get("Range") or "bytes=0-").removeprefix("bytes=").partition("-")
            reads["n"] += 1
            if reads["n"] > 2:  # mid-decode: the network goes away
                self.connection.close()
                return
            first, last = int(start), min(int(end or len(data) - 1), len(data) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
            self.send_header("Content-Length", str(last - first + 1))
            self.end_headers()
            self.wfile.write(data[first : last + 1])

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v/"
    server.shutdown()


def test_a_network_error_mid_decode_is_transient_not_a_corrupt_video(dropping_server: str) -> None:
    RangeReader.block = 4096  # several range reads per decode
    try:
        policy = SourcePolicy(http_prefixes=[dropping_server], timeout_s=5.0)
        with pytest.raises(SourceUnavailable) as err, open_source(dropping_server + "remote.mp4", policy) as source:
            decode_video(source, DecodeOptions())
        assert err.value.reason == "source_unreachable"
    finally:
        RangeReader.block = 1024 * 1024
