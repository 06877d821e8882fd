"""Curation at catalogue scale on this machine: the curation job (`CurationJob`, every step after the export) on N
synthetic 512-d segment vectors, in one process and on a local Ray, in the same run.

Run: `.venv/bin/python -m bench.curation_scale [--sizes 1000000] [--executors inprocess ray]`. Per size the
vectors are written once, chunk by chunk, as the export leaves them (a float16 file the job memory-maps, and the
rows' Parquet): clustered content with 5 % planted near-copies. Each executor runs the job from there in a child
process of its own, sampled every 0.2 s for the resident memory of its whole process tree (Ray's raylet and
workers included): wall time per step, peak RSS, and whether its manifest equals the one-process manifest. The
baseline of the ratios is the one-process run. On 2 cores Ray has two workers: it shows the overhead of
shipping chunks and clusters through Ray's object store, not a cluster's speed-up (see the README's
extrapolation for that).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from bench.common import recorded
from services.curation.executor import Executor, InProcess, RayTasks
from services.curation.export import ROW_FIELDS, ROW_TYPES
from services.curation.job import CurationConfig, CurationJob

DIM, CHUNK = 512, 200_000


def config(n: int) -> CurationConfig:
    return CurationConfig(tenant="bench", collection=f"synthetic-{n}", eps=0.05, batch=65536)


def prepare(work: Path, n: int, seed: int = 0) -> None:
    """The work folder as the export leaves it, written chunk by chunk (memory bounded by a chunk)."""
    folder = work / f"bench-{config(n).key()}"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((2000, DIM)).astype(np.float32)
    schema = pa.schema([(f, ROW_TYPES[f]) for f in ROW_FIELDS])
    with open(folder / "vectors.f16", "wb") as out, pq.ParquetWriter(folder / "rows.parquet", schema) as rows:
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            chunk = topics[rng.integers(0, len(topics), m)] + 1.2 * rng.standard_normal((m, DIM)).astype(np.float32)
            copies = rng.choice(np.arange(m // 2, m), m // 20, replace=False)  # 5 % near-copies of earlier rows
            chunk[copies] = chunk[rng.choice(m // 2, len(copies))] + 0.12 * rng.standard_normal((len(copies), DIM))
            chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
            out.write(chunk.astype(np.float16).tobytes())
            ids = [f"v{i:09d}" for i in range(start, start + m)]
            rows.write_table(
                pa.table(
                    {
                        "pk": [f"{v}#00000@bench" for v in ids],
                        "video_id": ids,
                        "segment_index": [0] * m,
                        "start_s": [0.0] * m,
                        "end_s": [2.0] * m,
                        "uri": [f"s3://bench/{v}.mp4" for v in ids],
                        "tenant": ["bench"] * m,
                    },
                    schema=schema,
                )
            )
    (folder / "state.json").write_text(json.dumps({"export_done": True, "step": "export", "rows": n, "dim": DIM}))


def child(executor_name: str, work: Path, n: int) -> None:
    """One run of the job (in a child process: its memory is its own)."""
    executor: Executor = RayTasks(num_cpus=os.cpu_count()) if executor_name == "ray" else InProcess()
    try:
        report = CurationJob(None, config(n), work, executor=executor).run(work / "manifest.parquet")  # type: ignore[arg-type]
    finally:
        executor.close()
    print(json.dumps({"seconds": report.seconds, "kept": report.kept, "dropped": report.dropped}))


def tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """(resident bytes, of which anonymous) of a process and its children: the rest is pages of memory-mapped
    files (the vectors, the ids), which the kernel drops under pressure; the anonymous part is the heap."""
    total = anon = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error, OSError):  # a worker gone meanwhile
            total += p.memory_info().rss
            status = Path(f"/proc/{p.pid}/status").read_text()
            if "RssAnon:" in status:  # a zombie has none
                anon += int(status.split("RssAnon:")[1].split()[0]) * 1024
    return total, anon


def measured(executor_name: str, work: Path, n: int) -> tuple[dict[str, object], float, float, float]:
    """(the child's report, wall seconds, peak RSS and peak anonymous RSS of its process tree in MiB)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.curation_scale", "--child", executor_name, str(work), str(n)],
        stdout=subprocess.PIPE,
        text=True,
    )
    watched = psutil.Process(proc.pid)
    peak = peak_anon = 0
    while proc.poll() is None:
        rss, anon = tree_rss(watched)
        peak, peak_anon = max(peak, rss), max(peak_anon, anon)
        time.sleep(0.2)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode:
        raise SystemExit(f"the {executor_name} run failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1]), time.monotonic() - started, peak / 2**20, peak_anon / 2**20


STEP_ARRAYS = ("centroids", "labels", "distance", "order", "twin", "similarity")  # in the order the steps make them


def differing_steps(reference: Path, other: Path) -> str:
    """Which of the job's per-step arrays differ between two runs, and in how many entries: the first one named is
    the step where the runs diverged."""
    found = []
    for name in STEP_ARRAYS:
        a, b = (np.load(next(w.glob(f"bench-*/{name}.npy")), mmap_mode="r") for w in (reference, other))
        if a.shape != b.shape:
            found.append(f"{name} (shape {a.shape} vs {b.shape})")
        elif not np.array_equal(a, b):
            differ = (np.asarray(a) != np.asarray(b)).reshape(len(a), -1)
            rows = np.flatnonzero(differ.any(axis=1))
            first = ", ".join(_entry(a, b, r, int(np.argmax(differ[r]))) for r in rows[:3])
            found.append(f"{name} ({int(np.count_nonzero(differ)):,} entries; first rows {first})")
    return "; ".join(found) or "no step array (the manifest writing itself)"


def _entry(a: npt.NDArray[Any], b: npt.NDArray[Any], row: int, column: int) -> str:
    """A differing entry for the report: `row: a vs b`, with the column for a matrix (centroids)."""
    if a.ndim == 1:
        return f"{row}: {a[row].item()} vs {b[row].item()}"
    return f"{row}[{column}]: {a[row].reshape(-1)[column].item()} vs {b[row].reshape(-1)[column].item()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--executors", nargs="+", default=["inprocess", "ray"], choices=["inprocess", "ray"])
    parser.add_argument("--keep-differing", type=Path, help="where to copy both runs' step arrays if they differ")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), int(args.child[2]))
        return
    print(
        f"{'vectors':>10s} {'executor':>9s} {'wall s':>8s} {'vs one':>7s} {'peak RSS MiB':>13s} {'anon MiB':>9s} "
        f"{'vectors MiB':>12s}  "
        f"steps s (cluster / dedup / borders / manifest)  same manifest"
    )
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:  # never inside the checkout
            base = Path(tmp)
            started = time.monotonic()
            prepare(base / "template", n)
            print(f"# {n:,} vectors written in {time.monotonic() - started:.0f} s")
            reference: pa.Table | None = None
            reference_work: Path | None = None
            baseline = 0.0
            for name in args.executors:
                work = base / name
                # hard links: the job only reads what the export left and replaces its state file by rename
                subprocess.run(["cp", "-rl", str(base / "template"), str(work)], check=True)
                report, wall, peak, anon = measured(name, work, n)
                manifest = pq.read_table(work / "manifest.parquet")
                same = "reference" if reference is None else str(manifest.equals(reference))
                reference = reference if reference is not None else manifest
                baseline = baseline or wall
                steps = report["seconds"]
                assert isinstance(steps, dict)
                size_mib = n * DIM * 2 / 2**20
                timings = " / ".join(f"{steps.get(s, 0):.0f}" for s in ("cluster", "dedup", "borders", "manifest"))
                print(
                    f"{n:>10,} {name:>9s} {wall:>8.1f} {wall / baseline:>6.2f}x {peak:>13,.0f} {anon:>9,.0f} "
                    f"{size_mib:>12,.0f}  "
                    f"{timings}  {same}; dropped {report['dropped']:,}"
                )
                if reference_work is None:
                    reference_work = work  # kept until the size is done: the others' steps are compared with it
                    continue
                if same == "False":
                    print(f"#   differs from the reference in: {differing_steps(reference_work, work)}")
                    if args.keep_differing:
                        for run in (reference_work, work):
                            kept = args.keep_differing / f"{n}-{run.name}"
                            kept.mkdir(parents=True, exist_ok=True)
                            for array in next(run.glob("bench-*")).glob("*.npy"):
                                shutil.copy(array, kept)
                subprocess.run(["rm", "-rf", str(work)], check=True)


if __name__ == "__main__":
    if "--child" in sys.argv:
        main()
    else:
        with recorded("curation_scale"):
            main()
