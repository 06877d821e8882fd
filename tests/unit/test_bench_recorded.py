"""A README figure cites `bench/results/<name>.txt`: only a finished run of its command writes that file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import common


def test_a_finished_run_keeps_what_it_printed_under_its_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["bench/shots.py", "--clips", "4"])
    with common.recorded("shots") as path:
        print("ours / reference: 1.07x")
    text = path.read_text().splitlines()
    assert text[0] == "# .venv/bin/python -m bench.shots --clips 4"
    assert text[-1] == "ours / reference: 1.07x"
    assert not (tmp_path / "shots.failed.txt").exists()


def test_a_run_that_raises_leaves_no_result_to_cite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    (tmp_path / "shots.txt").write_text("# an earlier, finished run\n")
    with pytest.raises(RuntimeError), common.recorded("shots"):
        print("half a table")
        raise RuntimeError("the stack went away")
    assert (tmp_path / "shots.txt").read_text() == "# an earlier, finished run\n"
    assert (tmp_path / "shots.failed.txt").read_text().endswith("half a table\n")


def test_a_child_process_of_a_recorded_run_leaves_the_file_to_its_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    code = "import sys; from pathlib import Path; from bench import common\n"
    code += "common.RESULTS = Path(sys.argv[1])\nwith common.recorded('decode'):\n    print('child')"
    child = [sys.executable, "-c", code, str(tmp_path)]
    with common.recorded("decode") as path:
        print("parent, before")
        subprocess.run(child, check=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
        print("parent, after")
    assert path.read_text().splitlines()[-2:] == ["parent, before", "parent, after"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decode.txt"]


def test_a_child_reports_its_own_peak_memory_not_its_parents() -> None:
    """bench.decode measures one decode's peak in a fresh child: a parent holding 400 MiB (torch, say) when it
    spawns the child must not show up in the child's figure."""
    held = bytearray(400 * 1024 * 1024)
    held[::4096] = b"x" * len(held[::4096])  # touched: resident, not just reserved
    code = "from bench.common import peak_rss_mib; print(peak_rss_mib())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(child.stdout) < 200, child.stdout
    del held


@pytest.mark.parametrize("exit_code", [0, 3])
def test_a_run_repeated_in_its_network_namespace_is_recorded_by_its_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exit_code: int
) -> None:
    """The Milvus benches re-run themselves in a loopback-only namespace: what the child prints is the result
    (its parent printed nothing), and a child that fails leaves no result to cite."""
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    (tmp_path / "netns_child.py").write_text(
        "import sys\nprint('recall@10 0.995')\nprint('p50 14.2 ms', flush=True)\nsys.exit(int(sys.argv[1]))\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["bench/search.py", str(exit_code)])
    if exit_code:
        with pytest.raises(SystemExit), common.recorded("search"):
            common.rerun_in_loopback_netns("netns_child")
        assert not (tmp_path / "results" / "search.txt").exists()
        return
    with common.recorded("search") as path:
        common.rerun_in_loopback_netns("netns_child")
    assert path.read_text().splitlines()[-2:] == ["recall@10 0.995", "p50 14.2 ms"]
