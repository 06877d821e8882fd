"""Spherical k-means with faiss, and every vector's nearest centroid."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from services.curation.executor import Executor, InProcess

Matrix = npt.NDArray[np.float32]
Vectors = npt.NDArray[np.floating[Any]]  # float32, or float16 as exported: computed in float32


def default_clusters(n: int) -> int:
    """About sqrt(n / 2) clusters: clusters of ~sqrt(2n) members keep the within-cluster pairs (the dedup's
    cost) and the assignment (n x k) in balance."""
    return max(1, min(n, round(math.sqrt(n / 2))))


TRAIN_POINTS = 2_000_000  # the training sample's cap: 4 GB at 512-d, whatever the catalogue (k > 7,812 only)


def train(vectors: Vectors, k: int, niter: int = 20, seed: int = 0) -> Matrix:
    """Normalised centroids, trained on at most 256 points per centroid (faiss's own cap, sampled here so a
    memory-mapped matrix is read only where sampled), and at most `TRAIN_POINTS` in all (never fewer than 39 a
    centroid, faiss's floor): the driver's memory for training is bounded, not proportional to the catalogue."""
    n, dim = vectors.shape
    k = max(1, min(k, n))
    per_centroid = min(256, max(39, TRAIN_POINTS // k))
    if n > per_centroid * k:
        picked = np.sort(np.random.default_rng(seed).choice(n, per_centroid * k, replace=False))
        sample = np.ascontiguousarray(vectors[picked], dtype=np.float32)
    else:
        sample = np.ascontiguousarray(vectors, dtype=np.float32)
    kmeans = faiss.Kmeans(dim, k, niter=niter, seed=seed, spherical=True, verbose=False)
    kmeans.train(sample)
    assert kmeans.centroids is not None
    centroids = kmeans.centroids.astype(np.float32)
    return centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)


def nearest(task: tuple[Matrix, Matrix]) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """A chunk's nearest centroids and cosine distances to them (one executor task: a chunk and the centroids)."""
    chunk, centroids = task
    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(centroids)
    chunk = np.ascontiguousarray(chunk, dtype=np.float32)
    _, found = index.search(chunk, 1)
    labels = found[:, 0].astype(np.int32)
    # the distance again, row by row: BLAS's result depends on its thread count by a few ulps (a Ray task runs
    # with one thread), and the dedup orders members by it, so it must be the same on every executor
    return labels, (1.0 - np.einsum("ij,ij->i", chunk, centroids[labels])).astype(np.float32)


def assign(
    vectors: Vectors,
    centroids: Matrix,
    labels: npt.NDArray[np.int32],
    distance: npt.NDArray[np.float32],
    progress: Callable[[float], None] = lambda _: None,
    batch: int = 65536,
    executor: Executor | None = None,
) -> None:
    """Fill `labels` (nearest centroid) and `distance` (its cosine distance), chunk by chunk on `executor`."""
    n = len(vectors)
    chunks = ((np.asarray(vectors[start : start + batch]), centroids) for start in range(0, n, batch))
    for i, (found, dist) in enumerate((executor or InProcess()).imap(nearest, chunks)):
        start = i * batch
        labels[start : start + len(found)] = found
        distance[start : start + len(found)] = dist
        progress(min((start + batch) / n, 1.0))


def members(
    labels: npt.NDArray[np.int32], k: int, out: npt.NDArray[np.int64] | None = None, chunk: int = 1 << 20
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Rows grouped by cluster, in row order within each (what a stable argsort gives), and each cluster's
    [start, end) in that order. A counting sort over `labels` a chunk at a time into `out` (a memory-mapped file
    at catalogue scale): memory is the k counts and one chunk, however many rows there are."""
    n = len(labels)
    counts = np.zeros(k, dtype=np.int64)
    for start in range(0, n, chunk):
        counts += np.bincount(np.asarray(labels[start : start + chunk]), minlength=k)
    bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    order = np.empty(n, dtype=np.int64) if out is None else out
    cursor = bounds[:-1].copy()  # where each cluster's next rows go
    for start in range(0, n, chunk):
        part = np.asarray(labels[start : start + chunk])
        by_label = np.argsort(part, kind="stable")
        sorted_labels = part[by_label]
        first = np.searchsorted(sorted_labels, sorted_labels, side="left")  # each row's rank within its cluster
        order[cursor[sorted_labels] + np.arange(len(part)) - first] = start + by_label
        cursor += np.bincount(part, minlength=k)
    return order, bounds
