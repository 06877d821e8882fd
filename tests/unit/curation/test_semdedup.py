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


def test_pairs_split_between_clusters_are_caught_across_the_border() -> None:
    rng = np.random.default_rng(4)
    base = _unit(rng.standard_normal((30, 16)))
    vectors = np.concatenate([base, _unit(base[:3] + 0.01 * rng.standard_normal((3, 16)))])
    centroids = train(vectors, 6)
    twin = np.full(len(vectors), -1, dtype=np.int64)  # as if every cluster's pass had kept everything
    similarity = np.zeros(len(vectors), dtype=np.float32)
    assert across_borders(vectors, twin, similarity, centroids, eps=0.05, probe=6) == 3
    assert twin[30:].tolist() == [0, 1, 2] and (twin[:30] == -1).all()  # the later row of each pair goes
    assert (similarity[30:] > 0.95).all()
