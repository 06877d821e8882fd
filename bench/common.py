"""What every benchmark needs: the clips to run on, a resource-usage probe, and its output kept."""

from __future__ import annotations

import contextlib
import io
import os
import platform
import resource
import shlex
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from services.media.synthetic import write_clip
from services.stack.milvus import NETNS_ENV, loopback_netns_argv

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"


def clips(scratch: Path) -> list[Path]:
    """The shared clips, or generated ones when they are absent."""
    if SHARED_VIDEOS.is_dir():
        return sorted(p for p in SHARED_VIDEOS.iterdir() if p.is_file() and p.suffix != ".md")
    return [
        write_clip(scratch / f"gen-{i}.mp4", seconds=20.0, fps=25, size=(640, 360), seed=i, cuts=(7.0, 13.0))
        for i in range(4)
    ]


def peak_rss_mib() -> float:
    """This process's own peak: the kernel's high-water mark of its memory map (`VmHWM`), which starts afresh at
    exec. `ru_maxrss` does not: a child spawned by a parent holding torch reports the parent's size."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


RESULTS = Path(__file__).resolve().parent / "results"
_RECORDING = "CLIPSTREAM_BENCH_RECORDING"


class _Tee(io.TextIOBase):
    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)


def rerun_in_loopback_netns(module: str) -> None:
    """Run this benchmark again inside a loopback-only network namespace (milvus 2.3.5 binds every interface),
    its output streamed through this process's stdout so that `recorded` keeps it; its failure is ours."""
    child = subprocess.Popen(
        loopback_netns_argv([module, *sys.argv[1:]]),
        env={**os.environ, NETNS_ENV: "1"},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    for line in child.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
    if child.wait():
        raise SystemExit(f"{module} failed in its network namespace (exit {child.returncode})")


@contextlib.contextmanager
def recorded(name: str, result: str = "") -> Iterator[Path]:
    """Everything the benchmark `bench.<name>` prints also goes to `bench/results/<result or name>.txt`, headed by
    the command, the date and the machine: a README figure cites that file, which only its command writes. A
    run that raises keeps what it printed under `<...>.failed.txt` instead, so a committed result is always a
    finished run. `result` names the file of a variant of the benchmark (another data set)."""
    if os.environ.get(_RECORDING):  # a child process of a recorded run (e.g. a memory probe): its parent records
        yield RESULTS / f"{os.environ[_RECORDING]}.txt"
        return
    RESULTS.mkdir(exist_ok=True)
    done, failed = RESULTS / f"{result or name}.txt", RESULTS / f"{result or name}.failed.txt"
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "-m", f"bench.{name}", *sys.argv[1:]])
    with failed.open("w") as out:
        out.write(
            f"# {command}\n# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, {platform.platform()}\n"
        )
        real = sys.stdout
        sys.stdout = _Tee(real, out)
        os.environ[_RECORDING] = result or name
        try:
            yield done
        finally:
            sys.stdout = real
            del os.environ[_RECORDING]
    failed.replace(done)
