"""A newcomer's first run, timed: the README's two set-up commands on a fresh clone with a fresh HOME.

Run: `.venv/bin/python -m bench.first_run`. Clones this checkout's HEAD beside the shared clips into a temporary
folder and, with HOME pointing at an empty folder (no uv, Go, Maven, Triton or clipstream caches), runs
1. the main-job command, `./scripts/bootstrap.sh && .venv/bin/clipstream demo`, to its search results (it must
   print a good match and no traceback; the goal is 5 minutes), then
2. the one-time part of the test command, `./scripts/bootstrap.sh tests`: the dev extras and the test tools (helm,
   the Jaeger collector and promtool built from the Go module proxy with empty Go caches), each tool's build time
   from its log. The suite itself is timed by `bench.suite`.
What a fresh HOME cannot empty is said in the output: Debian's packages (Java, Maven, Chromium) were already
installed on this machine, and the Go toolchain is the machine's.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import SHARED_VIDEOS, recorded

MAIN_JOB = "./scripts/bootstrap.sh && .venv/bin/clipstream demo"
TEST_SETUP = "./scripts/bootstrap.sh tests"
GOAL_S = 300.0


def _run(command: str, cwd: Path, env: dict[str, str], log: Path) -> tuple[float, int, str]:
    started = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(
            ["bash", "-c", command], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        ).returncode
    return time.monotonic() - started, code, log.read_text(errors="replace")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="first-run-") as scratch, recorded("first_run"):
        root = Path(scratch)
        checkout, home = root / "main", root / "home"
        home.mkdir()
        (root / "shared").mkdir()
        (root / "shared" / "videos").symlink_to(SHARED_VIDEOS)
        subprocess.run(["git", "clone", "--quiet", str(Path.cwd()), str(checkout)], check=True)
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("CLIPSTREAM_", "VIRTUAL_ENV"))}}
        env.update(HOME=str(home), COLUMNS="200")
        print(f"fresh clone of {head.stdout.strip()} in {checkout}, HOME={home} (empty)")
        print("already on this machine, not counted: Debian's Java 17, Maven, Chromium; the Go toolchain\n")
        try:
            wall, code, text = _run(MAIN_JOB, checkout, env, root / "main-job.log")
            good = "a good match" in text
            traceback = "Traceback" in text
            stack = re.search(r"stack up in ([\d.]+)s", text)
            indexed = re.search(r"indexed (\d+/\d+) videos .*? in ([\d.]+)s", text)
            print(f"main job  `{MAIN_JOB}`")
            print(f"  {wall:6.1f} s to search results (goal {GOAL_S:.0f} s: {wall / GOAL_S:.2f}x of it), exit {code}")
            print(
                f"  stack up {stack.group(1) if stack else '?'} s; indexed {indexed.group(1) if indexed else '?'} "
                f"in {indexed.group(2) if indexed else '?'} s; a good match: {good}; traceback: {traceback}"
            )
        finally:
            subprocess.run(
                [str(checkout / ".venv/bin/clipstream"), "stack", "down"],
                cwd=checkout,
                env=env,
                capture_output=True,
                check=False,
            )
        wall, code, text = _run(TEST_SETUP, checkout, env, root / "test-setup.log")
        tools = (checkout / ".venv" / "tools-build.log").read_text(errors="replace")
        print(f"\ntest set-up, once  `{TEST_SETUP}` (after the main job: the dev extras and the test tools)")
        print(f"  {wall:6.1f} s, exit {code}")
        for name, seconds in re.findall(r"built (\S+) in (\d+) s", tools):
            print(
                f"  {name:9} {int(seconds):5d} s (built from the Go module proxy, empty Go caches; in the background)"
            )
        if code or not good or traceback:
            raise SystemExit("the first run failed: see the logs above")


if __name__ == "__main__":
    main()
