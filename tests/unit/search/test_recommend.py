"""The Rocchio query: positives pull, negatives push, degenerate examples are refused; what may come back is
what the caller's filters allow, less the examples."""

import numpy as np
import pytest

from services.common.filters import Filters, MetadataFilters
from services.search.recommend import NEGATIVE_WEIGHT, Example, candidate_filter, query_vector


def test_positives_average_and_a_negative_pushes_away() -> None:
    a, b, c = np.eye(3, dtype=np.float32)
    q = np.asarray(query_vector([a, b], []))
    assert q == pytest.approx(np.array([1, 1, 0]) / np.sqrt(2))
    pushed = np.asarray(query_vector([a, b], [b]))
    expected = np.array([1.0, 1.0 - 2 * NEGATIVE_WEIGHT, 0.0])
    assert pushed == pytest.approx(expected / np.linalg.norm(expected))
    assert float(pushed @ b) < float(q @ b) and float(pushed @ a) > float(q @ a)
    assert np.linalg.norm(query_vector([2 * c], [])) == pytest.approx(1.0)  # examples count by direction


def test_no_positive_or_cancelling_examples_are_refused() -> None:
    a = np.array([1.0, 0.0], dtype=np.float32)
    with pytest.raises(ValueError):
        query_vector([], [a])
    with pytest.raises(ValueError):
        query_vector([a, -a], [])  # examples that cancel out leave no direction to search


def test_candidates_are_what_the_callers_filters_allow_less_the_examples() -> None:
    """The caller's tenant and filters hold for recommendations as for search: dropping them would recommend
    another tenant's videos."""
    caller = MetadataFilters(creator="ann", min_height=720, tags=["beach"]).scoped("acme")
    positives = [Example(video_id="v1"), Example(text="a red circle")]
    found = candidate_filter(caller, positives, ["v9", "v1"])
    expected = Filters(tenant="acme", creator="ann", min_height=720, tags=["beach"], exclude_video_ids=["v1", "v9"])
    assert found.compile() == expected.compile()
    assert candidate_filter(caller, [Example(text="x")], []).compile() == caller.compile()  # nothing to leave out
