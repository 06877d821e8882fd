"""The curation job on Ray tasks writes exactly the manifest of the one-process run on the same vectors, and
resumes from its checkpoints as that one does; every dropped row names a kept twin, by brute force."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.common.vectors import SegmentStore
from services.curation.executor import Executor, InProcess, RayTasks
from services.curation.export import ROW_FIELDS, ROW_TYPES
from services.curation.job import CurationConfig, CurationJob

ROWS, DIM = 6000, 256
CONFIG = CurationConfig(tenant="acme", collection="segments", eps=0.05, clusters=150, batch=700)


def _catalogue() -> tuple[np.ndarray, pa.Table]:
    """Bases with near-copies of some (and exact copies: ties in every comparison), in a shuffled order."""
    rng = np.random.default_rng(7)
    bases = rng.standard_normal((4000, DIM)).astype(np.float32)
    near = bases[:1500] + 0.03 * rng.standard_normal((1500, DIM)).astype(np.float32)
    exact = bases[1500:2000]
    vectors = np.concatenate([bases, near, exact])[rng.permutation(ROWS)]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = pa.table(
        {
            "pk": [f"v{i:06d}#00000@toy" for i in range(ROWS)],
            "video_id": [f"v{i:06d}" for i in range(ROWS)],
            "segment_index": [0] * ROWS,
            "start_s": [0.0] * ROWS,
            "end_s": [2.0] * ROWS,
            "uri": [f"s3://clips/{i}.mp4" for i in range(ROWS)],
            "tenant": ["acme"] * ROWS,
        },
        schema=pa.schema([(f, ROW_TYPES[f]) for f in ROW_FIELDS]),
    )
    return vectors.astype(np.float16).astype(np.float32), rows  # as exported: float16


def _exported(work: Path) -> Path:
    """A work folder as the export step leaves it (the steps after it are what the executors run)."""
    vectors, rows = _catalogue()
    folder = work / f"{CONFIG.tenant}-{CONFIG.key()}"
    folder.mkdir(parents=True)
    (folder / "vectors.f16").write_bytes(vectors.astype(np.float16).tobytes())
    pq.write_table(rows, folder / "rows.parquet")
    (folder / "state.json").write_text(json.dumps({"export_done": True, "step": "export", "rows": ROWS, "dim": DIM}))
    return work


def _run(work: Path, executor: Executor, progress: object = None) -> pa.Table:
    job = CurationJob(cast(SegmentStore, None), CONFIG, work, progress, executor)  # type: ignore[arg-type]
    job.run(work / "manifest.parquet")
    return pq.read_table(work / "manifest.parquet")


@pytest.fixture(scope="module")
def ray_tasks() -> Iterator[RayTasks]:
    tasks = RayTasks(num_cpus=2, window=3)  # a local Ray on loopback; few tasks in flight: results wait in order
    yield tasks
    tasks.close()


def test_ray_writes_exactly_the_manifest_of_one_process(tmp_path: Path, ray_tasks: RayTasks) -> None:
    alone = _run(_exported(tmp_path / "alone"), InProcess())
    on_ray = _run(_exported(tmp_path / "ray"), ray_tasks)
    assert alone.num_rows == on_ray.num_rows == ROWS
    assert 0 < pa.compute.sum(pa.compute.invert(alone.column("kept"))).as_py() < ROWS
    assert on_ray.equals(alone)


def test_every_dropped_row_names_a_kept_twin_by_brute_force(tmp_path: Path, ray_tasks: RayTasks) -> None:
    manifest = _run(_exported(tmp_path), ray_tasks)
    vectors, _ = _catalogue()
    kept = manifest.column("kept").to_numpy(zero_copy_only=False)
    index = {v: i for i, v in enumerate(manifest.column("video_id").to_pylist())}
    for row in np.flatnonzero(~kept):
        twin = index[manifest.column("duplicate_of_video")[row].as_py()]
        assert kept[twin], f"row {row} names {twin}, which was dropped too"
        similarity = float(vectors[row] @ vectors[twin])
        assert similarity > 1 - CONFIG.eps
        assert manifest.column("similarity")[row].as_py() == pytest.approx(similarity, abs=1e-5)
    survivors = vectors[kept]
    sims = survivors @ survivors.T
    np.fill_diagonal(sims, -1)
    assert sims.max() <= 1 - CONFIG.eps  # no two kept rows are near-identical


def test_a_ray_run_stopped_mid_dedup_resumes_to_the_same_manifest(tmp_path: Path, ray_tasks: RayTasks) -> None:
    reference = _run(_exported(tmp_path / "alone"), InProcess())
    work = _exported(tmp_path / "ray")

    def stop_after_one_group(step: str, done: float) -> None:
        if step == "dedup" and done < 1.0:
            raise KeyboardInterrupt  # a crash between two checkpoints' groups

    with pytest.raises(KeyboardInterrupt):
        _run(work, ray_tasks, stop_after_one_group)
    state = json.loads(next(work.glob("*/state.json")).read_text())
    assert 0 < state["dedup_next_cluster"] < CONFIG.clusters
    assert _run(work, ray_tasks).equals(reference)


def test_a_folder_manifest_holds_the_same_rows_split_into_kept_and_dropped(tmp_path: Path) -> None:
    single = _run(_exported(tmp_path / "file"), InProcess())
    work = _exported(tmp_path / "folder")
    CurationJob(cast(SegmentStore, None), CONFIG, work).run(work / "manifest")
    kept = pq.read_table(work / "manifest" / "kept")
    dropped = pq.read_table(work / "manifest" / "dropped")
    assert pa.compute.all(kept.column("kept")).as_py() and not pa.compute.any(dropped.column("kept")).as_py()
    both = pa.concat_tables([kept, dropped]).sort_by([("video_id", "ascending")])
    assert both.equals(single.sort_by([("video_id", "ascending")]))
    CurationJob(cast(SegmentStore, None), CONFIG, work).run(work / "manifest")
    assert pq.read_table(work / "manifest" / "kept").equals(kept)  # replaced whole, nothing left over
    assert not list(work.glob(".manifest*"))
