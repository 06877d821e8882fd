"""Whether a result is a good match: words named on screen, else the visual score against the model's
threshold; a text hit's score is another model's cosine and gives no verdict."""

from __future__ import annotations

from services.common.vectors import SegmentHit
from services.search.engine import Hits, _good


def _hit(score: float, *why: dict[str, object]) -> SegmentHit:
    return SegmentHit("v", score, {"why": list(why)} if why else {})


def test_good_match_at_the_limits() -> None:
    assert _good(_hit(0.3), 0.3) is True and _good(_hit(0.2999), 0.3) is False  # a plain visual hit
    assert _good(_hit(0.9, {"mode": "text", "words_found": 0.5}), 0.3) is True  # names half the words
    assert _good(_hit(0.9, {"mode": "text", "words_found": 0.49}), 0.3) is False  # MiniLM's 0.9 is no verdict
    assert _good(_hit(0.9, {"mode": "text", "words_found": 0.0}), None) is None
    mixed = _hit(0.9, {"mode": "text", "words_found": 0.0}, {"mode": "visual", "score": 0.31})
    assert _good(mixed, 0.3) is True and _good(mixed, 0.32) is False
    assert Hits([_hit(0.9, {"mode": "text", "words_found": 0.0})], 0.3).good_match is False
