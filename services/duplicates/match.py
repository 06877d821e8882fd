"""Temporal near-duplicate evidence between two videos, from their segment vectors: no I/O here.

One similar frame proves little (two films share a black intro, a logo card, a sky); an ordered run of
matching segments does. The segment pairs that are evidence (`evidence.py`) are aligned into the best
chain that moves forward in time on both sides (a monotone alignment, as a re-encode, a crop, a mirror,
a trim or a compilation keeps the order of what it copies). Blank segments (black, flat colour, a still
card with no detail) and very short ones never take part. The chain's coverage of each side decides the
kind: both sides mostly covered is a near-duplicate, one side covered is containment. A chain that holds
only the opening and/or closing shots of both videos, with unmatched content after (or before, or
between) them on both sides, is a shared intro or outro: evidence of the same channel, not of the same
video, however much of two short clips it covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.common.messages import DuplicateKind

WHOLE = 0.9  # coverage of a side that counts as the whole video
SAME_LENGTH = 0.5  # a lone matched pair's shorter segment is at least this share of the longer


@dataclass(frozen=True)
class MatchConfig:
    min_segment_s: float = 0.75  # shorter segments take no part: a flash proves nothing
    min_run: int = 2  # matched segments in order, unless the covered side has fewer informative segments
    min_matched_s: float = 2.0  # on the covered side
    duplicate_coverage: float = 0.6  # of each side's informative duration, for "duplicate"
    contained_coverage: float = 0.8  # of the contained side's, for containment
    bookend_s: float = 10.0  # a shared opening or closing run up to this long may be an intro or outro


@dataclass(frozen=True)
class Segment:
    index: int
    start_s: float
    end_s: float
    informative: bool = True  # False: blank, flat or still; see `blank.py`

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)


@dataclass(frozen=True)
class Pair:
    this: int  # segment index in the video being checked
    other: int  # segment index in the catalogued video
    score: float  # the pair's evidence score (`evidence.pair_score`)


@dataclass(frozen=True)
class Verdict:
    kind: DuplicateKind
    score: float  # duration-weighted mean evidence score over the matched run
    this_range: tuple[float, float]
    other_range: tuple[float, float]
    segments: int
    this_coverage: float
    other_coverage: float


def usable(segments: Sequence[Segment], config: MatchConfig) -> list[Segment]:
    """The segments that can be evidence: informative ones, and of those the short ones only when the video
    has nothing longer (a one-second clip is all short; a flash inside a film proves nothing)."""
    informative = [s for s in segments if s.informative]
    long = [s for s in informative if s.duration_s >= config.min_segment_s]
    return long or informative


def best_chain(pairs: Sequence[Pair], this: dict[int, Segment], other: dict[int, Segment]) -> list[Pair]:
    """The heaviest chain strictly increasing on both sides, weighted by matched duration x score.

    Quadratic in the pairs of one candidate video (a few dozen): simpler than a sparse DP, and exact."""
    ordered = sorted(pairs, key=lambda p: (p.this, p.other))
    weight = [min(this[p.this].duration_s, other[p.other].duration_s) * p.score for p in ordered]
    total = list(weight)
    back = [-1] * len(ordered)
    for k, p in enumerate(ordered):
        for m in range(k):
            q = ordered[m]
            if q.this < p.this and q.other < p.other and total[m] + weight[k] > total[k]:
                total[k], back[k] = total[m] + weight[k], m
    if not ordered:
        return []
    k = max(range(len(ordered)), key=total.__getitem__)
    chain = []
    while k >= 0:
        chain.append(ordered[k])
        k = back[k]
    return chain[::-1]


def bookends_only(chain: Sequence[Pair], this: dict[int, Segment], other: dict[int, Segment], most_s: float) -> bool:
    """Whether the chain is a shared intro and/or outro: on *both* sides its segments are the first and/or
    last ones, each such run at most `most_s` long, and some content is left unmatched. A side matched in
    full (a trimmed copy, a compilation's source) or a match in the middle of either is a copy's evidence."""
    return _ends_only([p.this for p in chain], this, most_s) and _ends_only([p.other for p in chain], other, most_s)


def _ends_only(matched: Sequence[int], side: dict[int, Segment], most_s: float) -> bool:
    order = sorted(side)
    hit = set(matched)
    head = next((k for k, i in enumerate(order) if i not in hit), len(order))
    if head == len(order):
        return False  # every segment matched: nothing beyond a head or tail
    tail = next(k for k, i in enumerate(reversed(order)) if i not in hit)
    if head + tail < len(hit):
        return False  # a matched segment sits between the unmatched ones
    runs = (order[:head], order[len(order) - tail :])
    return all(sum(side[i].duration_s for i in run) <= most_s for run in runs)


def judge(
    this_segments: Sequence[Segment], other_segments: Sequence[Segment], pairs: Sequence[Pair], config: MatchConfig
) -> Verdict | None:
    """Whether the video (`this`) duplicates, contains or is contained in the other, or None, from the segment
    pairs that are evidence."""
    this = {s.index: s for s in usable(this_segments, config)}
    other = {s.index: s for s in usable(other_segments, config)}
    kept = [p for p in pairs if p.this in this and p.other in other]
    chain = best_chain(kept, this, other)
    if not chain or bookends_only(chain, this, other, config.bookend_s):
        return None
    this_matched = sum(this[p.this].duration_s for p in chain)
    other_matched = sum(other[p.other].duration_s for p in chain)
    this_cov = this_matched / sum(s.duration_s for s in this.values())
    other_cov = other_matched / sum(s.duration_s for s in other.values())
    if this_cov >= config.duplicate_coverage and other_cov >= config.duplicate_coverage:
        kind: DuplicateKind = "duplicate"
        run, matched = min(config.min_run, len(this), len(other)), min(this_matched, other_matched)
    elif this_cov >= config.contained_coverage:
        kind, run, matched = "contained_in", min(config.min_run, len(this)), this_matched
    elif other_cov >= config.contained_coverage:
        kind, run, matched = "contains", min(config.min_run, len(other)), other_matched
    else:
        return None
    whole = this_cov >= WHOLE and other_cov >= WHOLE  # both videos matched from end to end, however short
    if len(chain) < run or (matched < config.min_matched_s and not whole):
        return None
    if len(chain) == 1:  # one pair is a run only if it pairs moments of like length: not a shot with a film
        a, b = this[chain[0].this].duration_s, other[chain[0].other].duration_s
        if min(a, b) < SAME_LENGTH * max(a, b):
            return None
    weights = [min(this[p.this].duration_s, other[p.other].duration_s) for p in chain]
    score = sum(w * p.score for w, p in zip(weights, chain, strict=True)) / sum(weights)
    return Verdict(
        kind=kind,
        score=score,
        this_range=(this[chain[0].this].start_s, this[chain[-1].this].end_s),
        other_range=(other[chain[0].other].start_s, other[chain[-1].other].end_s),
        segments=len(chain),
        this_coverage=this_cov,
        other_coverage=other_cov,
    )
