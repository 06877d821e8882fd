"""Semantic de-duplication within one k-means cluster (SemDeDup, Abbas et al. 2023).

Members are ordered by their distance to the centroid, farthest first (the paper's order: the most
prototypical copies go, the distinctive ones stay); a member is dropped when its cosine similarity to a
member kept before it exceeds 1 - eps. Exact within the cluster: the similarity matrix of a cluster is
built in blocks, so a large cluster costs time, not memory. A second pass (`across_borders`) catches the
pairs k-means split between neighbouring clusters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from services.curation.executor import Executor, InProcess

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


BorderTask = tuple[list[tuple[npt.NDArray[np.int64], Vectors, npt.NDArray[np.int64], Vectors]], float]
Pairs = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]


def border_pairs(task: BorderTask) -> Pairs:
    """One executor task of the border pass: for each cluster of the group, its kept rows against the kept rows of
    its `probe` nearest clusters (its own included); the near-identical pairs (i < j by row) found."""
    clusters, eps = task
    found_i: list[npt.NDArray[np.int64]] = []
    found_j: list[npt.NDArray[np.int64]] = []
    for query_rows, queries, candidate_rows, candidates in clusters:
        index = faiss.IndexFlatIP(candidates.shape[1])
        index.add(np.ascontiguousarray(candidates, dtype=np.float32))
        lims, _, hits = index.range_search(np.ascontiguousarray(queries, dtype=np.float32), 1.0 - eps)
        q = np.repeat(query_rows, np.diff(lims).astype(np.int64))
        c = candidate_rows[hits]
        other = q != c
        found_i.append(np.minimum(q, c)[other])
        found_j.append(np.maximum(q, c)[other])
    if not found_i:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(found_i), np.concatenate(found_j)


def across_borders(
    vectors: Vectors,
    twin: npt.NDArray[np.int64],
    similarity: npt.NDArray[np.float32],
    centroids: Matrix,
    eps: float,
    clusters: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
    probe: int = 4,
    executor: Executor | None = None,
    group: int = 16,
    chunk: int = 1 << 20,
) -> int:
    """Near-identical members that k-means put in different clusters (a boundary splits a pair as often as not
    when clusters are loose): each cluster's kept rows are compared with the kept rows of its `probe` nearest
    clusters, `group` clusters a task on `executor` (memory: a group's neighbourhood). Then, greedy in row
    order: a kept row drops the later rows it was paired with, so a dropped row always names a row that stays
    kept, and the rows earlier passes dropped for a row dropped here are handed on to its kept twin.
    `clusters` is `cluster.members`' (rows by cluster, bounds), memory-mapped at scale: besides a group, the driver
    holds the pairs found (16 B each) and a `chunk` of rows at a time.
    Updates `twin` (-1 = kept) and `similarity` in place; returns how many rows it dropped."""
    order, bounds = clusters
    k = len(centroids)
    quantizer = faiss.IndexFlatIP(centroids.shape[1])
    quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
    _, probes = quantizer.search(np.ascontiguousarray(centroids, dtype=np.float32), min(probe, k))

    def kept_of(c: int) -> npt.NDArray[np.int64]:
        rows = np.asarray(order[bounds[c] : bounds[c + 1]])
        return rows[np.asarray(twin[rows]) < 0]

    def tasks() -> Iterator[BorderTask]:
        for start in range(0, k, group):
            clusters = []
            for c in range(start, min(start + group, k)):
                rows = kept_of(c)
                if len(rows):
                    candidates = np.sort(np.concatenate([kept_of(p) for p in probes[c] if p >= 0]))
                    clusters.append((rows, np.asarray(vectors[rows]), candidates, np.asarray(vectors[candidates])))
            yield clusters, eps

    found = [pairs for pairs in (executor or InProcess()).imap(border_pairs, tasks()) if len(pairs[0])]
    if not found:
        return 0
    pair = np.unique(np.stack([np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])]), axis=1)
    del found
    dropped = 0
    for i, j in pair.T:  # sorted by i, then j: every drop by an earlier row happened before
        if twin[i] < 0 and twin[j] < 0:
            twin[j] = i
            dropped += 1
    # the similarity of each row dropped here, and of the rows a cluster's pass dropped for a row this pass has now
    # dropped (they name that row's kept twin instead: this pass only drops rows for rows it keeps), row by row
    fresh = [pair[1][np.asarray(twin[pair[1]]) == pair[0]]]
    for start in range(0, len(twin), chunk):
        part = np.asarray(twin[start : start + chunk])
        rows = start + np.flatnonzero(part >= 0)
        stale = rows[np.asarray(twin[twin[rows]]) >= 0]
        if len(stale):
            twin[stale] = twin[twin[stale]]
            fresh.append(stale)
    changed = np.unique(np.concatenate(fresh))
    for start in range(0, len(changed), chunk):
        rows = changed[start : start + chunk]
        pairs = (np.asarray(vectors[rows], dtype=np.float32), np.asarray(vectors[twin[rows]], dtype=np.float32))
        similarity[rows] = np.einsum("ij,ij->i", *pairs)
    return dropped
