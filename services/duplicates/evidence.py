"""Which segment pairs of two videos show the same content: the served model's cosine, the frames' perceptual
hashes (`services.media.fingerprints`), or both fused. No I/O here.

CLIP alone is only as good as the model's knowledge of the footage: a model that has never seen such content
scores strangers as close as copies. The hashes know nothing of content but say plainly whether two frames are
the same picture (re-encoded, resized, letterboxed, mirrored, cropped by a fifth). Fused, a pair is evidence
when its frames hash alike (whatever the model says), or when the model finds it close and the hashes do not
contradict it: both segments fingerprinted and no frame of one within `veto_bits` of any frame of the other
means different pictures, and the model's match is refused. Segments without fingerprints (flat frames, rows
written before fingerprints existed) leave the decision to the model, as before.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from services.common.fingerprints import BITS, KeyframeFingerprint, distances, hash_matrix
from services.duplicates.match import Pair

Mode = Literal["fused", "clip", "fingerprints"]


@dataclass(frozen=True)
class EvidenceConfig:
    clip_threshold: float  # cosine at which the model says two segments show the same content
    mode: Mode = "fused"
    match_bits: int = 8  # two frames this close are the same picture (strangers' frames: ~20-32 apart)
    min_share: float = 0.25  # of the checked segment's fingerprinted frames that must find their picture
    veto_bits: int = 10  # fused: no frames closer than this and the model's match is refused


@dataclass(frozen=True)
class FrameMatch:
    best_bits: int  # the closest frames of the two segments
    share: float  # of this segment's frames, those within `match_bits` of some frame of the other

    @property
    def similarity(self) -> float:
        return 1.0 - self.best_bits / BITS


Prints = Mapping[int, Sequence[KeyframeFingerprint]]  # segment index -> its frames' fingerprints


def frame_matches(
    this: Prints, other: Prints, match_bits: int, within_bits: int = BITS, keys: Collection[tuple[int, int]] = ()
) -> dict[tuple[int, int], FrameMatch]:
    """The pairs of fingerprinted segments whose closest frames are at most `within_bits` apart, and the pairs
    in `keys` whatever their distance; one checked segment against all the other's frames at a time (memory:
    its frames x the other video's, never the two videos' full product)."""
    order = [j for j in sorted(other) if other[j]]
    if not order:
        return {}
    columns = hash_matrix([f for j in order for f in other[j]])
    starts = np.cumsum([0, *(len(other[j]) for j in order[:-1])])
    found: dict[tuple[int, int], FrameMatch] = {}
    for i, prints in this.items():
        if not prints:
            continue
        d: npt.NDArray[np.uint8] = distances(hash_matrix(prints), columns)  # (frames of i, frames of other)
        per_segment = np.minimum.reduceat(d, starts, axis=1)  # (frames of i, segments of other)
        best = per_segment.min(axis=0)
        share = (per_segment <= match_bits).mean(axis=0)
        for k in np.flatnonzero(best <= within_bits):
            found[(i, order[k])] = FrameMatch(int(best[k]), float(share[k]))
        for j in (j for (a, j) in keys if a == i):
            if j in other and other[j] and (i, j) not in found:
                k = order.index(j)
                found[(i, j)] = FrameMatch(int(best[k]), float(share[k]))
    return found


def pair_score(cosine: float | None, frames: FrameMatch | None, config: EvidenceConfig) -> float | None:
    """The pair's evidence score, or None when it is no evidence. The score is the model's cosine or, for
    pictures the hashes match, the larger of it and the hashes' similarity (1 - bits apart / 64)."""
    model_says = cosine is not None and cosine >= config.clip_threshold
    if config.mode == "clip":
        return cosine if model_says else None
    hashes_say = frames is not None and frames.best_bits <= config.match_bits and frames.share >= config.min_share
    if hashes_say:
        assert frames is not None
        return max(frames.similarity, cosine or 0.0)
    if config.mode == "fingerprints" or not model_says:
        return None
    if frames is not None and frames.best_bits > config.veto_bits:
        return None  # the model calls them alike; the pictures are not
    return cosine


def evidence(
    cosines: Mapping[tuple[int, int], float], this: Prints, other: Prints, config: EvidenceConfig
) -> list[Pair]:
    """The pairs that are evidence: those the model found near (`cosines`, by segment pair) and, unless the
    mode is `clip`, those whose frames hash alike."""
    # only pairs that can be evidence: frames within the match bits, or a model pair the veto must judge
    wanted = [k for k, c in cosines.items() if c >= config.clip_threshold]
    frames = frame_matches(this, other, config.match_bits, config.match_bits, wanted) if config.mode != "clip" else {}
    pairs = []
    for key in sorted(set(cosines) | set(frames)):
        score = pair_score(cosines.get(key), frames.get(key), config)
        if score is not None:
            pairs.append(Pair(key[0], key[1], score))
    return pairs
