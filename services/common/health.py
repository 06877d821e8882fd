"""Liveness, readiness and /metrics on one small loopback HTTP server per service process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds would flood the log
        pass


class HealthServer:
    """`/healthz` answers 200 while `live()` (a stuck process answers 503 and is restarted); `/readyz` answers
    200 only while `ready()` is true (started, and its dependencies usable)."""

    def __init__(
        self, host: str, port: int, ready: Callable[[], bool], live: Callable[[], bool] = lambda: True
    ) -> None:
        metrics_app = make_wsgi_app()

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            path = environ.get("PATH_INFO", "")
            if path == "/metrics":
                return metrics_app(environ, start_response)
            if path == "/healthz":
                alive = live()
                start_response("200 OK" if alive else "503 Service Unavailable", [("Content-Type", "text/plain")])
                return [b"ok" if alive else b"stuck"]
            if path == "/readyz":
                ok = ready()
                start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
                return [b"ready" if ok else b"not ready"]
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]

        self._server: WSGIServer = make_server(host, port, app, handler_class=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
