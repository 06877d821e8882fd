"""SemDeDup within a cluster against the definition, and the clustering helpers."""

import numpy as np
import pytest

from services.curation.cluster import assign, default_clusters, members, train
from services.curation.semdedup import across_borders, brute_force, dedup_cluster


def _unit(m: np.ndarray) -> np.ndarray:
    return (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("block", [3, 2048])  # across block edges and within one block
def test_no_two_kept_members_are_near_identical_and_each_dropped_one_names_its_kept_twin(block: int) -> None:
    rng = np.random.default_rng(1)
    base = _unit(rng.standard_normal((20, 32)))
    copies = _unit(base[:8] + 0.02 * rng.standard_normal((8, 32)))
    vectors = np.concatenate([base, copies])
    distances = rng.random(len(vectors)).astype(np.float32)
    found = dedup_cluster(vectors, distances, eps=0.05, block=block)
    kept = np.flatnonzero(found.kept)
    sims = vectors[kept] @ vectors[kept].T
    np.fill_diagonal(sims, -1)
    assert sims.max() <= 0.95
    assert (~found.kept).sum() == 8  # one of each planted pair
    for i in np.flatnonzero(~found.kept):
        twin = found.twin[i]
        assert found.kept[twin] and float(vectors[i] @ vectors[twin]) > 0.95
        assert found.similarity[i] == pytest.approx(float(vectors[i] @ vectors[twin]), abs=1e-5)
    assert (found.twin[found.kept] == -1).all()


def test_the_member_farthest_from_the_centroid_is_kept() -> None:
    v = _unit(np.array([[1.0, 0.0], [1.0, 0.001]]))
    assert dedup_cluster(v, np.array([0.1, 0.3], np.float32), eps=0.05).kept.tolist() == [False, True]
    assert dedup_cluster(v, np.array([0.3, 0.1], np.float32), eps=0.05).kept.tolist() == [True, False]


def test_brute_force_finds_every_vector_with_a_twin() -> None:
    rng = np.random.default_rng(2)
    base = _unit(rng.standard_normal((50, 16)))
    vectors = np.concatenate([base, _unit(base[:5] + 0.01 * rng.standard_normal((5, 16)))])
    twins = brute_force(vectors, eps=0.05, block=7)
    assert set(np.flatnonzero(twins)) == {0, 1, 2, 3, 4, 50, 51, 52, 53, 54}


def test_clusters_separate_well_separated_groups() -> None:
    rng = np.random.default_rng(3)
    centres = _unit(rng.standard_normal((4, 16)) * 10)
    vectors = _unit(np.repeat(centres, 50, axis=0) + 0.05 * rng.standard_normal((200, 16)))
    centroids = train(vectors, 4)
    labels, distance = np.empty(200, np.int32), np.empty(200, np.float32)
    assign(vectors, centroids, labels, distance, batch=33)
    assert all(len(set(labels[g * 50 : (g + 1) * 50])) == 1 for g in range(4)) and len(set(labels)) == 4
    assert (distance < 0.05).all()
    order, bounds = members(labels, 4)
    assert (np.diff(bounds) == 50).all() and sorted(order.tolist()) == list(range(200))
    assert default_clusters(1) == 1 and default_clusters(20_000) == 100


def test_members_streamed_in_chunks_are_a_stable_argsort() -> None:
    """The counting sort a chunk at a time (into a given array, as the job's memory-mapped file) gives what a
    stable argsort of every label gives, empty clusters and a chunk that ends mid-cluster included."""
    labels = np.random.default_rng(5).integers(0, 9, 1000).astype(np.int32)
    labels[labels == 4] = 7  # cluster 4 empty
    out = np.full(1000, -1, dtype=np.int64)
    order, bounds = members(labels, 10, out=out, chunk=333)
    assert order is out
    np.testing.assert_array_equal(order, np.argsort(labels, kind="stable"))
    np.testing.assert_array_equal(bounds, np.searchsorted(np.sort(labels), np.arange(11)))
    assert bounds[4] == bounds[5] and bounds[10] == 1000


def _labels(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    labels = np.zeros(len(vectors), dtype=np.int32)
    assign(vectors, centroids, labels, np.zeros(len(vectors), dtype=np.float32))
    return labels


def test_pairs_split_between_clusters_are_caught_across_the_border() -> None:
    rng = np.random.default_rng(4)
    base = _unit(rng.standard_normal((30, 16)))
    vectors = np.concatenate([base, _unit(base[:3] + 0.01 * rng.standard_normal((3, 16)))])
    centroids = train(vectors, 6)
    twin = np.full(len(vectors), -1, dtype=np.int64)  # as if every cluster's pass had kept everything
    similarity = np.zeros(len(vectors), dtype=np.float32)
    assert (
        across_borders(vectors, twin, similarity, centroids, 0.05, members(_labels(vectors, centroids), 6), probe=6)
        == 3
    )
    assert twin[30:].tolist() == [0, 1, 2] and (twin[:30] == -1).all()  # the later row of each pair goes
    assert (similarity[30:] > 0.95).all()


def test_a_row_dropped_for_a_row_the_border_pass_drops_names_the_kept_one() -> None:
    """C was dropped inside its cluster as a copy of B; across the border B is a copy of A and goes too: C must
    name A (kept), with its own similarity to A, not B (dropped)."""
    rng = np.random.default_rng(7)
    a = _unit(rng.standard_normal((1, 16)))
    b = _unit(a + 0.01 * rng.standard_normal((1, 16)))
    c = _unit(b + 0.01 * rng.standard_normal((1, 16)))
    vectors = np.concatenate([a, b, c, _unit(rng.standard_normal((20, 16)))])
    twin = np.full(len(vectors), -1, dtype=np.int64)
    similarity = np.zeros(len(vectors), dtype=np.float32)
    twin[2], similarity[2] = 1, float(c @ b.T)  # the cluster pass kept B and dropped C
    centroids = train(vectors, 4)
    assert (
        across_borders(vectors, twin, similarity, centroids, 0.05, members(_labels(vectors, centroids), 4), probe=4)
        == 1
    )
    assert twin[:3].tolist() == [-1, 0, 0]
    assert similarity[2] == pytest.approx(float(c @ a.T), abs=1e-6)


def test_after_both_passes_every_dropped_row_names_a_kept_twin_by_brute_force() -> None:
    """The whole dedup (per cluster, then across borders) on groups of seven near-copies that k-means splits:
    every dropped row names a kept row at the similarity it states, and no two kept rows are near-identical.
    (This seed leaves 10 dropped rows naming a dropped one without the hand-on.)"""
    rng = np.random.default_rng(1)
    base = _unit(rng.standard_normal((200, 32)))
    copies = [_unit(base + 0.15 / np.sqrt(32) * rng.standard_normal((200, 32))) for _ in range(6)]
    vectors = np.concatenate([base, *copies])
    eps, k = 0.08, 16
    centroids = train(vectors, k)
    labels = np.zeros(len(vectors), dtype=np.int32)
    distances = np.zeros(len(vectors), dtype=np.float32)
    assign(vectors, centroids, labels, distances)
    twin = np.full(len(vectors), -1, dtype=np.int64)
    similarity = np.zeros(len(vectors), dtype=np.float32)
    for cluster in range(k):
        rows = np.flatnonzero(labels == cluster)
        if len(rows):
            result = dedup_cluster(vectors[rows], distances[rows], eps)
            dropped = np.flatnonzero(~result.kept)
            twin[rows[dropped]] = rows[result.twin[dropped]]
            similarity[rows[dropped]] = result.similarity[dropped]
    across_borders(vectors, twin, similarity, centroids, eps, members(labels, k), probe=k, chunk=97)
    dropped = np.flatnonzero(twin >= 0)
    assert len(dropped) > 0
    assert (twin[twin[dropped]] == -1).all(), "a dropped row names a row that was dropped too"
    stated = np.einsum("ij,ij->i", vectors[dropped], vectors[twin[dropped]])
    np.testing.assert_allclose(similarity[dropped], stated, atol=1e-5)
    kept = vectors[twin < 0]
    sims = kept @ kept.T
    np.fill_diagonal(sims, -1.0)
    assert (sims <= 1.0 - eps).all(), "two kept rows are near-identical"
