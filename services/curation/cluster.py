"""Spherical k-means with faiss, and every vector's nearest centroid."""

from __future__ import annotations

import math
from collections.abc import Callable

import faiss
import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]


def default_clusters(n: int) -> int:
    """About sqrt(n / 2) clusters: clusters of ~sqrt(2n) members keep the within-cluster pairs (the dedup's
    cost) and the assignment (n x k) in balance."""
    return max(1, min(n, round(math.sqrt(n / 2))))


def train(vectors: Matrix, k: int, niter: int = 20, seed: int = 0) -> Matrix:
    """Normalised centroids, trained on at most 256 points per centroid (faiss's own cap, sampled here so a
    memory-mapped matrix is read only where sampled)."""
    n, dim = vectors.shape
    k = max(1, min(k, n))
    if n > 256 * k:
        picked = np.sort(np.random.default_rng(seed).choice(n, 256 * k, replace=False))
        sample = np.ascontiguousarray(vectors[picked], dtype=np.float32)
    else:
        sample = np.ascontiguousarray(vectors, dtype=np.float32)
    kmeans = faiss.Kmeans(dim, k, niter=niter, seed=seed, spherical=True, verbose=False)
    kmeans.train(sample)
    assert kmeans.centroids is not None
    centroids = kmeans.centroids.astype(np.float32)
    return centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)


def assign(
    vectors: Matrix,
    centroids: Matrix,
    labels: npt.NDArray[np.int32],
    distance: npt.NDArray[np.float32],
    progress: Callable[[float], None] = lambda _: None,
    batch: int = 65536,
) -> None:
    """Fill `labels` (nearest centroid) and `distance` (its cosine distance) in batches."""
    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(centroids)
    n = len(vectors)
    for start in range(0, n, batch):
        sims, found = index.search(np.ascontiguousarray(vectors[start : start + batch], dtype=np.float32), 1)
        labels[start : start + batch] = found[:, 0]
        distance[start : start + batch] = 1.0 - sims[:, 0]
        progress(min((start + batch) / n, 1.0))


def members(labels: npt.NDArray[np.int32], k: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Rows sorted by cluster, and each cluster's [start, end) in that order."""
    order = np.argsort(labels, kind="stable")
    return order, np.searchsorted(labels[order], np.arange(k + 1))
