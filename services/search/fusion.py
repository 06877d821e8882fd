"""One ranking from what a segment shows (the CLIP search) and what is written on it (on-screen text):
reciprocal rank fusion, and the lexical test that tells a text hit that names the query's words from one that
is only near it in meaning. No I/O here."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from services.common.vectors import SegmentHit

RRF_K = 60  # the constant of Cormack et al.: dampens the head of each ranking
NAMED = 0.5  # a text hit names the query when it holds at least this share of its words
_WORD = re.compile(r"\w+")
# words a caption holds whatever it says: they never make a text hit name the query
_STOPWORDS = frozenset(
    {
        "the",
        "and",
        "for",
        "are",
        "but",
        "not",
        "you",
        "all",
        "any",
        "can",
        "her",
        "was",
        "one",
        "our",
        "out",
        "his",
        "has",
        "had",
        "how",
        "its",
        "may",
        "new",
        "now",
        "who",
        "did",
        "get",
        "let",
        "she",
        "too",
        "use",
        "way",
        "with",
        "from",
        "this",
        "that",
        "than",
        "then",
        "them",
        "they",
        "what",
        "when",
        "where",
        "which",
        "while",
        "your",
        "into",
    }
)


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def words_found(query: str, written: str) -> float:
    """The share of the query's words (those of 3 characters or more, when it has any) that the written text
    holds, stopwords left out ("the beach" is named by "BEACH", not by "THE"). OCR often drops the spaces between
    words ("SLOW MOTIONWATERFALL"), so a word of 4 characters or more is also found inside the text with its
    spaces removed; shorter ones only as whole words ("a", "on" and "the" would otherwise be found in almost
    anything)."""
    tokens = _WORD.findall(_folded(query))
    words = [w for w in tokens if len(w) >= 3 and w not in _STOPWORDS] or tokens
    if not words:
        return 0.0
    written_words = _WORD.findall(_folded(written))
    whole, squeezed = set(written_words), "".join(written_words)
    return sum(1 for w in words if w in whole or (len(w) >= 4 and w in squeezed)) / len(words)


def fuse(rankings: Mapping[str, Sequence[SegmentHit]], k: int = RRF_K) -> list[SegmentHit]:
    """Videos ranked by the sum of 1 / (k + rank) over the rankings they appear in (rank from 1). A video
    keeps the segment of the ranking that placed it highest, and every ranking's reason (`why`)."""
    total: dict[str, float] = {}
    best: dict[str, tuple[int, SegmentHit]] = {}
    reasons: dict[str, list[dict[str, Any]]] = {}
    for hits in rankings.values():
        for rank, hit in enumerate(hits, start=1):
            total[hit.video_id] = total.get(hit.video_id, 0.0) + 1.0 / (k + rank)
            if hit.video_id not in best or rank < best[hit.video_id][0]:
                best[hit.video_id] = (rank, hit)
            reasons.setdefault(hit.video_id, []).extend(hit.fields.get("why") or [])
    order = sorted(total, key=lambda v: (-total[v], best[v][0], v))
    return [
        replace(best[v][1], fields={**best[v][1].fields, "why": reasons[v], "fused_score": round(total[v], 6)})
        for v in order
    ]
