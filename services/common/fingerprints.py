"""Perceptual fingerprints as data: their text form in messages and rows, and how far apart two of them are.

A frame's fingerprint is four 64-bit DCT hashes (`services.media.fingerprints` computes them): of the picture
with its black bars cut off, of its mirror image, and of the centre of each. A segment carries its frames'
fingerprints, one every 0.5 s of video, as text: "t:plain.mirror.centre.mirroredcentre" (16 hex digits a hash)
joined by ","; the message and the Milvus row hold the same string. Unrelated pictures are about 32 of 64 bits
apart, copies a few.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BITS = 64
MAX_PER_SEGMENT = 48  # fingerprints a segment keeps (evenly spread over it): bounds the field (FINGERPRINTS_BYTES)


@dataclass(frozen=True)
class KeyframeFingerprint:
    hashes: tuple[int, int, int, int]  # plain, mirror, centre, mirrored centre

    def text(self) -> str:
        return ".".join(f"{h:016x}" for h in self.hashes)

    @classmethod
    def parse(cls, text: str) -> KeyframeFingerprint:
        parts = text.split(".")
        if len(parts) != 4 or any(len(p) != 16 for p in parts):
            raise ValueError(f"not a keyframe fingerprint: {text[:80]!r}")
        a, b, c, d = (int(p, 16) for p in parts)
        return cls((a, b, c, d))


Timed = tuple[float, KeyframeFingerprint]  # (seconds from the start of the video, fingerprint)


def distance(a: KeyframeFingerprint, b: KeyframeFingerprint) -> int:
    """Bits apart under the transforms a copy makes: as is, mirrored, one side's centre against the other's whole
    picture (a crop), and both centres."""
    pa, ma, ca, mca = a.hashes
    pb, _, cb, _ = b.hashes
    pairs = ((pa, pb), (ma, pb), (ca, pb), (mca, pb), (pa, cb), (ma, cb), (ca, cb), (mca, cb))
    return min((x ^ y).bit_count() for x, y in pairs)


def segment_text(timed: Sequence[Timed]) -> str:
    """A segment's fingerprints as one field, at most MAX_PER_SEGMENT of them, evenly spread."""
    if len(timed) > MAX_PER_SEGMENT:
        step = len(timed) / MAX_PER_SEGMENT
        timed = [timed[int(i * step)] for i in range(MAX_PER_SEGMENT)]
    return ",".join(f"{t:.2f}:{f.text()}" for t, f in timed)


def parse_segment(text: str) -> list[Timed]:
    """The fingerprints in a segment's field; a malformed one is skipped (it is evidence, never a failure)."""
    found: list[Timed] = []
    for part in text.split(",") if text else ():
        t, _, hashes = part.partition(":")
        try:
            found.append((float(t), KeyframeFingerprint.parse(hashes)))
        except ValueError:
            continue
    return found


def hash_matrix(fingerprints: Sequence[KeyframeFingerprint]) -> npt.NDArray[np.uint64]:
    """(n, 4) hashes, for `distances`."""
    return np.array([f.hashes for f in fingerprints], dtype=np.uint64).reshape(-1, 4)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def distances(a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint8]:
    """(len(a), len(b)) bits apart, as `distance` counts them, for every pair of two hash matrices."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), dtype=np.uint8)
    best = np.full((len(a), len(b)), BITS, dtype=np.uint8)
    for i in range(4):  # a's plain, mirror, centre and mirrored centre ...
        for j in (0, 2):  # ... against b's plain picture and its centre
            xor = (a[:, i][:, None] ^ b[:, j][None, :]).view(np.uint8).reshape(len(a), len(b), 8)
            np.minimum(best, _POPCOUNT[xor].sum(axis=2, dtype=np.uint8), out=best)
    return best


def hash_vector(value: int) -> list[float]:
    """A 64-bit hash as a unit vector of +-1/8 per bit: its cosine with another is 1 - 2 * bits apart / 64, so a
    float-vector index (every Milvus, Lite included; Lite has no binary vectors) ranks by Hamming distance."""
    return [0.125 if value >> (BITS - 1 - i) & 1 else -0.125 for i in range(BITS)]


def bits_apart(cosine: float) -> int:
    """The Hamming distance of two hashes from their vectors' cosine."""
    return round((1.0 - cosine) * BITS / 2)
