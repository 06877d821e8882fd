"""The README's test command up to the suite (bootstrap and pytest; the Kubernetes smoke test after it is timed
by itself, see the README), timed, beside a measure of how fast this machine is at the time.

Run: `.venv/bin/python -m bench.suite [--runs N]`. The machines here are shared: the same suite took 9 min on one
day and 12.7 min on another with the same code, because the host gave less CPU (the decode bench's plain PyAV
decode, which is pure CPU, took 25 % longer). So each run first times that decode of the shared clips (best of 3)
and prints it as a ratio to the figure committed in `bench/results/decode.txt`: a suite time is read together
with the machine's speed when it ran. Then the command itself, its wall time, the machine's busy CPU time over
the run (nothing else should run), and pytest's summary line.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import time
from pathlib import Path

from bench.common import RESULTS, recorded
from bench.decode import plain_decode
from tests.clips import shared_clips

COMMAND = "./scripts/bootstrap.sh tests && .venv/bin/python -m pytest -q"
GOAL_S = 600.0


def decode_baseline_s() -> float:
    """The committed decode bench's plain-decode wall time (the same clips, the same loop)."""
    text = (RESULTS / "decode.txt").read_text()
    found = re.search(r"^pyav plain decode \(baseline\)\s+([\d.]+)", text, re.M)
    if not found:
        raise SystemExit("bench/results/decode.txt has no plain-decode baseline: run `python -m bench.decode`")
    return float(found.group(1))


def decode_now_s() -> float:
    clips = shared_clips()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for clip in clips:
            plain_decode(clip)
        best = min(best, time.perf_counter() - started)
    return best


def busy_cpu_s() -> float:
    """CPU seconds this machine spent busy since boot (every process: the suite's servers outlive their parents)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_suite(log: Path) -> tuple[float, float, int, str]:
    before = busy_cpu_s()
    started = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(["bash", "-c", COMMAND], stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    wall = time.monotonic() - started
    cpu = busy_cpu_s() - before
    lines = log.read_text(errors="replace").splitlines()
    summary = next((line for line in reversed(lines) if re.search(r"\d+ (passed|failed)", line)), "(no summary)")
    failed = [line for line in lines if line.startswith("FAILED ")]
    return wall, cpu, code, "\n".join([summary.strip("= "), *failed])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--log-dir", type=Path, default=Path("test-artifacts"))
    args = parser.parse_args()
    args.log_dir.mkdir(parents=True, exist_ok=True)
    baseline = decode_baseline_s()
    with recorded("suite"):
        print(f"command: {COMMAND}")
        print(
            f"goal: the suite within {GOAL_S / 60:.0f} min; machine speed = committed decode baseline "
            f"({baseline:.2f} s) / the same decode now (>1 faster than then, <1 slower)\n"
        )
        print(f"{'run':>3}  {'decode s':>8}  {'speed':>5}  {'wall':>7}  {'cpu':>7}  {'cpu/wall':>8}  exit  pytest")
        for run in range(1, args.runs + 1):
            now = decode_now_s()
            wall, cpu, code, summary = run_suite(args.log_dir / f"suite-run-{run}.log")
            print(
                f"{run:>3}  {now:8.2f}  {baseline / now:4.2f}x  {wall / 60:5.1f} m  {cpu / 60:5.1f} m  "
                f"{cpu / wall:7.2f}x  {code:>4}  {summary}"
            )


if __name__ == "__main__":
    main()
