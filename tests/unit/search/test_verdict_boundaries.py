"""Verdicts made at a threshold, tested at it, just below and just above: "no good match" for a search, and
a generation-cache hit (the prompt's `prompt_match`, the references' `duplicate`). A threshold is the lowest
score still taken, so exactly at it is a match."""

import math

import numpy as np
import pytest

from services.common.vectors.search import SegmentHit
from services.search.cache import CacheEntry, Generation, entry_row, screen
from services.search.engine import Hits, hits_to_json

THRESHOLD = 0.8483
BELOW, ABOVE = math.nextafter(THRESHOLD, 0.0), math.nextafter(THRESHOLD, 1.0)
REQUEST = Generation(prompt="two large blue triangles on water", generator="toy-gen", duration_s=6.0)


def _hits(score: float) -> Hits:
    return Hits([SegmentHit("v1", score, {"start_s": 0.0, "end_s": 3.0})], THRESHOLD)


@pytest.mark.parametrize(("score", "good"), [(THRESHOLD, True), (BELOW, False), (ABOVE, True)])
def test_a_good_match_is_a_best_score_at_or_above_the_threshold(score: float, good: bool) -> None:
    hits = _hits(score)
    assert hits.good_match is good
    body = hits_to_json(hits)
    assert body["good_match"] is good
    assert body["results"][0]["good_match"] is good  # the score itself, not the 6 decimals it is shown with


def test_no_hits_is_no_good_match_and_no_threshold_no_verdict() -> None:
    assert Hits([], THRESHOLD).good_match is False
    assert Hits([SegmentHit("v1", 0.99, {"start_s": 0.0, "end_s": 3.0})]).good_match is None


def _row(references: list[float] | None = None) -> dict[str, object]:
    """A cache entry's row as the engine stores it."""
    entry = CacheEntry(uri="file:///tmp/generated.mp4", request=REQUEST)
    return entry_row("c1", "acme", "v1", entry, [1.0, 0.0], references)


@pytest.mark.parametrize(("score", "hit"), [(THRESHOLD, True), (BELOW, False), (ABOVE, True)])
def test_a_cache_hit_is_a_prompt_score_at_or_above_prompt_match(score: float, hit: bool) -> None:
    candidates, best = screen([(score, _row())], REQUEST, None, THRESHOLD, 0.9)
    assert [c.score for c in candidates] == ([score] if hit else [])
    assert best == score  # a miss still reports how close the nearest prompt came


@pytest.mark.parametrize(("alike", "hit"), [(0.75, True), (math.nextafter(0.75, 1.0), False), (0.74, True)])
def test_references_hit_at_or_above_the_duplicate_threshold(alike: float, hit: bool) -> None:
    """The stored references' mean is (1, 0), the request's (0.75, ~0.66): their cosine is exactly 0.75."""
    request_refs = np.array([0.75, math.sqrt(1 - 0.75**2)], dtype=np.float32)
    candidates, best = screen([(0.99, _row([1.0, 0.0]))], REQUEST, request_refs, THRESHOLD, alike)
    assert [c.reference_score for c in candidates] == ([0.75] if hit else [])
    assert best == (0.99 if hit else None)  # other pictures are another request: no score to report
