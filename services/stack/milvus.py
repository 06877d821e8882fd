"""Milvus Lite as a local server (a Lite `.db` admits one process, and indexer and search are two),
and private servers for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from services.stack.process import Proc, http_ok, port_open, wait_until
from services.stack.settings import StackSettings


def lite_argv(data: Path, host: str, port: int) -> list[str]:
    cli = Path(sys.executable).parent / "milvus-lite"
    return [str(cli), "server", "--data-dir", str(data), "--host", host, "--port", str(port)]


def start_milvus_lite(settings: StackSettings) -> Proc:
    proc = Proc("milvus", settings.run_dir)
    url = urlparse(settings.common.milvus_uri)
    host, port = url.hostname or settings.host, url.port or 19530
    if not proc.running():
        data = settings.data_dir / "milvus"
        data.mkdir(parents=True, exist_ok=True)
        proc.start(lite_argv(data, host, port), ports=[(host, port)])
    wait_until(lambda: port_open(host, port), proc, f"Milvus Lite on {host}:{port}", 60)
    return proc


STANDALONE_PORT = 19530  # milvus==2.3.5 listens on fixed ports on every interface
STANDALONE_HEALTH = "http://127.0.0.1:9091/healthz"  # OK ~2 s after the proxy opens its port
NETNS_ENV = "CLIPSTREAM_IN_LOOPBACK_NETNS"


@contextlib.contextmanager
def private_milvus(backend: Literal["lite", "standalone"], data: Path, port: int = 39540) -> Iterator[str]:
    """A throwaway Milvus for tests and benchmarks, killed with its whole process group on exit.

    `standalone` is the `milvus==2.3.5` wheel's server: it binds every interface, so it is refused
    unless this process runs in a loopback-only network namespace (see `run_in_loopback_netns`)."""
    ready: Callable[[], bool]
    if backend == "standalone":
        if os.environ.get(NETNS_ENV) != "1":
            raise RuntimeError("milvus 2.3.5 binds every interface: run it through run_in_loopback_netns")
        argv = [str(Path(sys.executable).parent / "milvus-server"), "--data", str(data)]
        port = STANDALONE_PORT
        ready = partial(http_ok, STANDALONE_HEALTH)
    else:
        argv = lite_argv(data, "127.0.0.1", port)
        ready = partial(port_open, "127.0.0.1", port)
    proc = Proc(f"milvus-{backend}", data / "clipstream-run")
    proc.start(argv)
    try:
        wait_until(ready, proc, f"Milvus ({backend}) on port {port}", 180)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop(timeout_s=0)  # nothing to keep


def loopback_netns_argv(module_argv: list[str]) -> list[str]:
    """`python -m ...` in a new network namespace whose only interface is loopback (run with NETNS_ENV=1)."""
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", *module_argv])
    return ["unshare", "--net", "--", "bash", "-c", f"ip link set lo up && exec {command}"]


def run_in_loopback_netns(module_argv: list[str], capture: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `python -m ...` in a new network namespace whose only interface is loopback."""
    return subprocess.run(
        loopback_netns_argv(module_argv),
        env={**os.environ, NETNS_ENV: "1"},
        capture_output=capture,
        text=True,
        timeout=None if not capture else 600,
        check=False,
    )
