"""Semantic de-duplication within one k-means cluster (SemDeDup, Abbas et al. 2023).

Members are ordered by their distance to the centroid, farthest first (the paper's order: the most
prototypical copies go, the distinctive ones stay); a member is dropped when its cosine similarity to a
member kept before it exceeds 1 - eps. Exact within the cluster: the similarity matrix of a cluster is
built in blocks, so a large cluster costs time, not memory. A second pass (`across_borders`) catches the
pairs k-means split between neighbouring clusters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]
Vectors = npt.NDArray[np.floating[Any]]  # float32, or float16 as exported: computed in float32


@dataclass(frozen=True)
class ClusterDedup:
    kept: npt.NDArray[np.bool_]  # per member, in the order given
    twin: npt.NDArray[np.int64]  # per dropped member: the position of the kept member it duplicates; -1 if kept
    similarity: npt.NDArray[np.float32]  # to that twin


def dedup_cluster(vectors: Vectors, distances: npt.NDArray[np.float32], eps: float, block: int = 2048) -> ClusterDedup:
    """`vectors` normalised (n, d); `distances` to the centroid (n,)."""
    n = len(vectors)
    order = np.argsort(-distances, kind="stable")
    ordered = np.ascontiguousarray(vectors[order], dtype=np.float32)  # float16 as exported: compared in float32
    kept = np.zeros(n, dtype=bool)
    twin = np.full(n, -1, dtype=np.int64)
    similarity = np.zeros(n, dtype=np.float32)
    limit = 1.0 - eps
    kept_rows: list[int] = []  # positions in `ordered` kept so far
    kept_matrix = np.empty((0, vectors.shape[1]), dtype=np.float32)
    for start in range(0, n, block):
        chunk = ordered[start : start + block]
        # similarities to members kept in earlier blocks, then greedily within this block
        best = np.full(len(chunk), -np.inf, dtype=np.float32)
        best_at = np.full(len(chunk), -1, dtype=np.int64)
        if kept_rows:
            sims = chunk @ kept_matrix.T
            best_at = np.asarray(kept_rows, dtype=np.int64)[sims.argmax(axis=1)]
            best = sims.max(axis=1)
        inner = chunk @ chunk.T
        newly: list[int] = []
        for i in range(len(chunk)):
            if newly:
                local = inner[i, newly]
                j = int(local.argmax())
                if local[j] > best[i]:
                    best[i], best_at[i] = local[j], start + newly[j]
            if best[i] > limit:
                twin[order[start + i]] = order[best_at[i]]
                similarity[order[start + i]] = best[i]
            else:
                kept[order[start + i]] = True
                newly.append(i)
        kept_rows.extend(start + i for i in newly)
        kept_matrix = np.concatenate([kept_matrix, chunk[newly]]) if newly else kept_matrix
    return ClusterDedup(kept, twin, similarity)


def brute_force(vectors: Matrix, eps: float, block: int = 4096) -> npt.NDArray[np.bool_]:
    """The baseline: whether each vector has a near-identical one anywhere (all pairs, no clustering)."""
    n = len(vectors)
    has_twin = np.zeros(n, dtype=bool)
    for start in range(0, n, block):
        sims = vectors[start : start + block] @ vectors.T
        rows = np.arange(min(block, n - start))
        sims[rows, start + rows] = -1.0  # not itself
        has_twin[start : start + block] = (sims > 1.0 - eps).any(axis=1)
    return has_twin


def dedup_group(task: tuple[list[tuple[Matrix, npt.NDArray[np.float32]]], float]) -> list[ClusterDedup]:
    """Several clusters' SemDeDup (one executor task: each cluster's vectors and centroid distances, and eps)."""
    clusters, eps = task
    return [dedup_cluster(vectors, distances, eps) for vectors, distances in clusters]


def across_borders(
    vectors: Vectors,
    twin: npt.NDArray[np.int64],
    similarity: npt.NDArray[np.float32],
    centroids: Matrix,
    eps: float,
    probe: int = 4,
    batch: int = 8192,
) -> int:
    """Near-identical members that k-means put in different clusters (a boundary splits a pair as often as
    not when clusters are loose): every kept vector is looked up among the kept vectors of its `probe`
    nearest clusters (a faiss IVF index over the same centroids, range search at 1 - eps). Greedy in row
    order: a kept row drops the later rows it finds, so a dropped row always names a row that stays kept, and the
    rows earlier passes dropped for a row dropped here are handed on to its kept twin.
    Updates `twin` (-1 = kept) and `similarity` in place; returns how many rows it dropped."""
    kept = np.flatnonzero(twin < 0)
    if len(kept) < 2:
        return 0
    dim = vectors.shape[1]
    quantizer = faiss.IndexFlatIP(dim)
    quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
    index = faiss.IndexIVFFlat(quantizer, dim, len(centroids), faiss.METRIC_INNER_PRODUCT)
    index.is_trained = True  # the quantizer holds the curation's own centroids
    for start in range(0, len(kept), batch):
        rows = kept[start : start + batch]
        index.add_with_ids(np.ascontiguousarray(vectors[rows], dtype=np.float32), rows.astype(np.int64))
    index.nprobe = min(probe, len(centroids))
    dropped = 0
    for start in range(0, len(kept), batch):
        rows = kept[start : start + batch]
        lims, sims, found = index.range_search(np.ascontiguousarray(vectors[rows], dtype=np.float32), 1.0 - eps)
        for i, row in enumerate(rows):
            if twin[row] >= 0:
                continue  # dropped by an earlier row of this pass
            for other, sim in zip(found[lims[i] : lims[i + 1]], sims[lims[i] : lims[i + 1]], strict=True):
                if other > row and twin[other] < 0:
                    twin[other], similarity[other] = row, sim
                    dropped += 1
    # rows a cluster's pass dropped for a row this pass has now dropped: they name that row's twin instead (kept:
    # this pass only drops rows for rows it keeps), with their similarity to it
    dropped_rows = np.flatnonzero(twin >= 0)
    stale = dropped_rows[twin[twin[dropped_rows]] >= 0]
    if len(stale):
        twin[stale] = twin[twin[stale]]
        pairs = (np.asarray(vectors[stale], dtype=np.float32), np.asarray(vectors[twin[stale]], dtype=np.float32))
        similarity[stale] = np.einsum("ij,ij->i", *pairs)
    return dropped
