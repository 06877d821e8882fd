"""`python -m services.stack.supervisor NAME HEALTH_URL -- ARGV...`: keep one service process alive, as Kubernetes does.

The local stack runs each service under this supervisor: a process that exits (a crash, a watchdog exit
after a stuck Kafka call, kill -9) is started again with a capped exponential backoff (CrashLoopBackOff),
and a process whose liveness endpoint fails `failures` probes in a row is killed and restarted (a liveness
probe). The child's PID is kept in `<run_dir>/<NAME>.child.pid`, so tests can kill the service itself.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from services.stack.process import http_status

log = logging.getLogger("clipstream.supervisor")

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 10.0
HEALTHY_RESET_S = 60.0  # a child that ran this long starts the backoff over
PROBE_PERIOD_S = 10.0  # Kubernetes' default periodSeconds
PROBE_FAILURES = 3
STARTUP_GRACE_S = 120.0  # no liveness probes while a child starts (models load, groups join)


class Supervisor:
    def __init__(self, name: str, health_url: str, argv: list[str], run_dir: Path) -> None:
        self.name, self.health_url, self.argv = name, health_url, argv
        self.child_pid_file = run_dir / f"{name}.child.pid"
        self.stopping = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def run(self) -> int:
        backoff = BACKOFF_INITIAL_S
        while not self.stopping.is_set():
            started = time.monotonic()
            self.child = subprocess.Popen(self.argv)  # same session: `stack down` stops both
            self.child_pid_file.write_text(str(self.child.pid))
            code = self._watch(started)
            if self.stopping.is_set():
                return 0
            if time.monotonic() - started > HEALTHY_RESET_S:
                backoff = BACKOFF_INITIAL_S
            self.restarts += 1
            log.warning(
                "%s exited with %s: restart #%d in %.1fs",
                self.name,
                code,
                self.restarts,
                backoff,
            )
            self.stopping.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
        return 0

    def _watch(self, started: float) -> int:
        assert self.child is not None
        failures = 0
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                return self.child.wait(timeout=PROBE_PERIOD_S)
            if self.stopping.is_set() or not self.health_url:
                continue
            status = http_status(self.health_url, timeout_s=2)
            if (status is not None and status != 200) or (
                status is None and time.monotonic() - started > STARTUP_GRACE_S
            ):
                failures += 1
            else:
                failures = 0
            if failures >= PROBE_FAILURES:
                log.warning("%s failed %d liveness probes: killing it", self.name, failures)
                self.child.kill()
                failures = 0

    def stop(self, signum: int, _frame: object) -> None:
        self.stopping.set()
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)


def main(args: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s supervisor %(levelname)s %(message)s")
    name, health_url, run_dir, sep, *argv = args
    if sep != "--" or not argv:
        raise SystemExit("usage: python -m services.stack.supervisor NAME HEALTH_URL RUN_DIR -- ARGV...")
    supervisor = Supervisor(name, health_url, argv, Path(run_dir))
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    code = supervisor.run()
    if supervisor.child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            supervisor.child.wait(timeout=15)
    supervisor.child_pid_file.unlink(missing_ok=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
