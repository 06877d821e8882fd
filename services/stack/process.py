"""Start background servers with a pid file and a log, wait for their port, stop them by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from services.common.errors import ClipstreamError


class StackError(ClipstreamError):
    """A local-stack component could not be installed or started."""

    reason = "stack"


@dataclass(frozen=True)
class Proc:
    name: str
    run_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ports: Sequence[tuple[str, int]] = (),
    ) -> int:
        """Start the process unless ours runs. A port it needs that something else already holds (a leftover
        of a killed run) is refused: waiting for "port open" would then pass on a stranger with stale data."""
        if (pid := self.pid()) is not None:
            return pid
        taken = [f"{host}:{port}" for host, port in ports if port_open(host, port)]
        if taken:
            raise StackError(f"{self.name}: {', '.join(taken)} already in use by a process this stack did not start")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def stop(self, timeout_s: float = 20.0) -> bool:
        """SIGTERM the process group we started, SIGKILL it if it lingers. Returns whether one was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        # SIGKILL also what outlives the leader: `milvus-server` exits on SIGTERM and leaves its
        # `milvus run standalone` child behind
        _signal_group(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def http_status(url: str, timeout_s: float = 1.0) -> int | None:
    """The status a health endpoint answers; None when nothing answers (not listening yet, or gone)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def http_ok(url: str) -> bool:
    """A health endpoint answers 200."""
    return http_status(url) == 200


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_until(check: Callable[[], bool], proc: Proc, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if not proc.running():
            raise StackError(f"{proc.name} exited while waiting for {what}:\n{proc.log_tail()}")
        time.sleep(0.2)
    raise StackError(f"timed out after {timeout_s:.0f}s waiting for {what}:\n{proc.log_tail()}")
