"""In CI a missing ../shared/videos stops the session loudly instead of skipping the real-clip tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _collect(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLIPSTREAM_TEST_SHARED_VIDEOS": str(tmp_path / "absent")}
    env.pop("CI", None)
    if ci:
        env["CI"] = "true"
    argv = [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider", "tests/unit/enricher"]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_ci_without_the_shared_clips_is_a_usage_error(tmp_path: Path) -> None:
    done = _collect(tmp_path, ci=True)
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    assert "CI needs the shared clips" in done.stdout + done.stderr


def test_a_developer_without_them_still_runs_the_rest(tmp_path: Path) -> None:
    assert _collect(tmp_path, ci=False).returncode == 0
