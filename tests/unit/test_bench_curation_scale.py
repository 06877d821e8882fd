"""bench.curation_scale names the first step where two executors' runs diverged when their manifests differ."""

from pathlib import Path

import numpy as np

from bench.curation_scale import STEP_ARRAYS, differing_steps


def _run(folder: Path, twin_change: int | None = None) -> Path:
    steps = folder / "bench-x"
    steps.mkdir(parents=True)
    for name in STEP_ARRAYS:
        array = np.arange(10, dtype=np.float32 if name in ("distance", "similarity", "centroids") else np.int64)
        if name == "twin" and twin_change is not None:
            array[twin_change] = -1
        np.save(steps / f"{name}.npy", array)
    return folder


def test_the_differing_step_arrays_are_named_with_their_counts(tmp_path: Path) -> None:
    reference, same, other = _run(tmp_path / "a"), _run(tmp_path / "b"), _run(tmp_path / "c", twin_change=3)
    assert differing_steps(reference, other) == "twin (1 entries; first rows 3: 3 vs -1)"
    assert differing_steps(reference, same) == "no step array (the manifest writing itself)"


def test_a_differing_matrix_is_reported_by_row(tmp_path: Path) -> None:
    reference, other = _run(tmp_path / "a"), _run(tmp_path / "b")
    np.save(reference / "bench-x" / "centroids.npy", np.zeros((4, 5), dtype=np.float32))
    changed = np.zeros((4, 5), dtype=np.float32)
    changed[2, 4] = 0.5
    np.save(other / "bench-x" / "centroids.npy", changed)
    assert differing_steps(reference, other) == "centroids (1 entries; first rows 2[4]: 0.0 vs 0.5)"
