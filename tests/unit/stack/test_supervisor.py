"""The stack's supervisor restarts a service that exits and one that fails its liveness probes."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from services.stack import supervisor
from services.stack.supervisor import Supervisor

# a "service" whose /healthz answers 503 (stuck, as a processor's watchdog reports it) and never exits
STUCK = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(sup: Supervisor, seconds: float) -> None:
    thread = threading.Thread(target=sup.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + seconds
    while sup.restarts < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    sup.stopping.set()
    if sup.child is not None:
        sup.child.kill()
    thread.join(10)


@pytest.fixture(autouse=True)
def fast_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "PROBE_PERIOD_S", 0.2)
    monkeypatch.setattr(supervisor, "BACKOFF_INITIAL_S", 0.1)


def test_a_process_that_exits_is_started_again(tmp_path: Path) -> None:
    sup = Supervisor("crashy", "", [sys.executable, "-c", "raise SystemExit(3)"], tmp_path)
    _run(sup, 20)
    assert sup.restarts >= 2


def test_a_process_failing_liveness_is_killed_and_started_again(tmp_path: Path) -> None:
    port = _free_port()
    sup = Supervisor("stuck", f"http://127.0.0.1:{port}/healthz", [sys.executable, "-c", STUCK, str(port)], tmp_path)
    _run(sup, 30)
    assert sup.restarts >= 2, "the stuck process was never restarted"
