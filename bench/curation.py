"""Curation throughput: faiss k-means + SemDeDup within clusters, against brute-force all-pairs dedup.

Run: `.venv/bin/python -m bench.curation [--sizes 100000 1000000] [--eps 0.05]`. Ours includes the pass over
cluster borders. Synthetic 512-d unit
vectors: clustered content (2,000 topics) with 5% planted near-copies (a vector plus small noise, cosine
about 0.98 to its source). Ours: the curation job's own functions (`cluster.train`, `cluster.assign`,
`semdedup.dedup_cluster` per cluster) on a matrix in memory. Baseline: every vector against every other
(`semdedup.brute_force`, blocked matrix products), run in full where it takes under `--baseline-budget`
seconds by estimate, else timed on the first blocks and extrapolated (said so in the output). Both report
how many planted copies they catch.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import recorded
from services.curation.cluster import assign, default_clusters, members, train
from services.curation.semdedup import across_borders, brute_force, dedup_cluster

DIM = 512


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors, the rows that are planted near-copies, and the rows they copy."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((2000, DIM)).astype(np.float32)
    vectors = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        vectors[start : start + m] = topics[rng.integers(0, len(topics), m)] + 1.2 * rng.standard_normal((m, DIM))
    copies = rng.choice(np.arange(n // 2, n), n // 20, replace=False)
    sources = rng.choice(n // 2, len(copies), replace=False)
    vectors[copies] = vectors[sources] + 0.12 * rng.standard_normal((len(copies), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, copies, sources


def ours(vectors: np.ndarray, eps: float) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    n = len(vectors)
    k = default_clusters(n)
    centroids = train(vectors, k)
    labels = np.empty(n, dtype=np.int32)
    distance = np.empty(n, dtype=np.float32)
    assign(vectors, centroids, labels, distance)
    order, bounds = members(labels, k)
    twin = np.full(n, -1, dtype=np.int64)
    similarity = np.zeros(n, dtype=np.float32)
    for c in range(k):
        rows = order[bounds[c] : bounds[c + 1]]
        if len(rows) > 1:
            found = dedup_cluster(vectors[rows], distance[rows], eps)
            twin[rows] = np.where(found.kept, -1, rows[np.maximum(found.twin, 0)])
    across_borders(vectors, twin, similarity, centroids, eps, (order, bounds))
    return time.perf_counter() - started, twin >= 0


def baseline(vectors: np.ndarray, eps: float, budget_s: float) -> tuple[float, bool, np.ndarray | None]:
    """Seconds for all pairs (measured, or extrapolated from the first rows), and its verdicts if run whole."""
    n = len(vectors)
    probe = min(n, 8192)
    started = time.perf_counter()
    _rows_vs_all(vectors, probe, eps)
    estimate = (time.perf_counter() - started) * n / probe
    if estimate > budget_s:
        return estimate, False, None
    started = time.perf_counter()
    twins = brute_force(vectors, eps)
    return time.perf_counter() - started, True, twins


def _rows_vs_all(vectors: np.ndarray, rows: int, eps: float) -> None:
    block = max(1, 2**28 // len(vectors))  # a block of similarities stays ~1 GiB
    for start in range(0, rows, block):
        sims = vectors[start : start + block] @ vectors.T
        (sims > 1.0 - eps).any(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--eps", type=float, default=0.05)
    parser.add_argument("--baseline-budget", type=float, default=600.0)
    args = parser.parse_args()
    header = ("vectors", "ours s", "vec/s", "baseline s", "vec/s", "speed-up")
    print(" ".join(f"{h:>10s}" for h in header) + "  planted copies caught")
    for n in args.sizes:
        vectors, copies, sources = synthetic(n)
        ours_s, dropped = ours(vectors, args.eps)
        base_s, measured, twins = baseline(vectors, args.eps, args.baseline_budget)
        # a planted pair is caught when one of the two is dropped (either may be the one kept)
        caught = f"ours {(dropped[copies] | dropped[sources]).mean():.3f}"
        if twins is not None:
            caught += f", baseline {(twins[copies] & twins[sources]).mean():.3f}"
        caught += f"; ours dropped {int(dropped.sum())} rows for {len(copies)} planted copies"
        note = "" if measured else " (baseline extrapolated from 8,192 rows against all)"
        print(
            f"{n:10d} {ours_s:10.1f} {n / ours_s:10.0f} {base_s:10.1f} {n / base_s:10.0f} {base_s / ours_s:9.1f}x  "
            f"{caught}{note}"
        )
        del vectors


if __name__ == "__main__":
    with recorded("curation"):
        main()
