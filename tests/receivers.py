"""Real HTTP receivers on loopback for the webhook tests: each request is recorded with its arrival time, headers
and exact body bytes, and answered as the test says (status, delay, headers)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Arrival:
    at: float  # time.monotonic() when the request was read
    wall: float  # time.time() then, to compare with a payload's timestamp
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    def verified(self, secret: str) -> Any:
        """The payload if the signature is valid for this secret, else None."""
        try:
            return Webhook(secret).verify(self.body, self.headers)
        except WebhookVerificationError:
            return None


Answer = tuple[int, float, dict[str, str]]  # status, seconds to wait before answering, headers
Plan = Callable[[str, int], Answer]  # (path, how many requests this path had before) -> answer


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops concurrent connects: each then waits a 1-s SYN retry


class Receiver:
    def __init__(self, port: int = 0, plan: Plan | None = None) -> None:
        self.arrivals: list[Arrival] = []
        self._lock = threading.Lock()
        self._plan = plan or (lambda _path, _n: (200, 0.0, {}))
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                arrival = Arrival(
                    time.monotonic(), time.time(), self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                with receiver._lock:
                    before = sum(1 for a in receiver.arrivals if a.path == self.path)
                    receiver.arrivals.append(arrival)
                status, wait, headers = receiver._plan(self.path, before)
                time.sleep(wait)
                self.send_response(status)
                for name, value in {"content-length": "2", **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Arrival]:
        with self._lock:
            return [a for a in self.arrivals if a.path == path]

    def wait_for(self, path: str, count: int, timeout_s: float) -> list[Arrival]:
        """The path's arrivals once it has `count` distinct webhook ids (or when the time is up)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len({a.webhook_id for a in self.at(path)}) < count:
            time.sleep(0.05)
        return self.at(path)

    def wait_ids(self, path: str, ids: set[str], timeout_s: float) -> list[Arrival]:
        """The path's arrivals once every one of these webhook ids has come (or when the time is up)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not ids <= {a.webhook_id for a in self.at(path)}:
            time.sleep(0.05)
        return self.at(path)
