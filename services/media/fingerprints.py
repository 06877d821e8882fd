"""Model-free perceptual fingerprints of frames: evidence of a copy that no CLIP model has to understand.

Each fingerprinted frame gets 64-bit DCT hashes (pHash, from thorn's `perception`) of its picture with any black
bars cut off (a letterboxed copy hashes like its source), of its mirror image (a flipped copy), and of the centre
of each (a cropped copy of the centre hashes like the source's centre). Two frames are as far apart as the
closest of those hashes: for unrelated pictures about 32 of 64 bits, for copies a few. A flat or nearly flat picture
(black, a colour card) has no fingerprint: every such frame hashes alike, so it can never be evidence.

The decoder fingerprints the frame it decodes at or after every instant of a fixed grid (every `INTERVAL_S`),
independent of where shots are cut: a copy's segments need not line up with its source's, but its frames at the
same moments hash alike. Compared across two videos, the sequences are the temporal fingerprint: which moments
of one show which moments of the other, in order. Their text form and distances: `services.common.fingerprints`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from perception.hashers import PHash
from perception.hashers.tools import unletterbox
from PIL import Image

from services.common.fingerprints import KeyframeFingerprint

INTERVAL_S = 0.5  # a fingerprint every this many seconds of video
MIN_DETAIL = 4.0  # luma standard deviation (0..255) at 32x32 below which a picture is flat: no fingerprint
CENTRE = 0.8  # the share of each side the centre hash sees
SIDE = 256  # pictures are hashed at most this large (the DCT sees 32x32)
_HASHER = PHash(hash_size=8)

Pixels = npt.NDArray[np.uint8]  # (h, w, 3) RGB


def detail(pixels: Pixels) -> float:
    """Luma standard deviation at 32x32: about 0 for flat pictures, tens for content."""
    luma = Image.fromarray(pixels).convert("L").resize((32, 32), Image.Resampling.BILINEAR)
    return float(np.asarray(luma, dtype=np.float32).std())


def _bits(image: Pixels) -> int:
    vector = _HASHER.compute(np.ascontiguousarray(image), hash_format="vector")
    assert isinstance(vector, np.ndarray)
    return int("".join("1" if b else "0" for b in vector.astype(bool).ravel()), 2)


def _centre(image: Pixels, share: float) -> Pixels:
    h, w = image.shape[:2]
    ch, cw = max(1, int(h * share)), max(1, int(w * share))
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[top : top + ch, left : left + cw]


def fingerprint(pixels: Pixels) -> KeyframeFingerprint | None:
    """The keyframe's fingerprint, or None for a flat picture (or one that is all bars)."""
    if pixels.ndim != 3 or pixels.shape[2] != 3 or min(pixels.shape[:2]) < 8:
        return None
    scale = SIDE / max(pixels.shape[:2])
    if scale < 1:
        size = (max(8, round(pixels.shape[1] * scale)), max(8, round(pixels.shape[0] * scale)))
        pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))
    bounds = unletterbox(pixels, only_remove_black=True, min_side_length=16)
    if bounds is None:
        return None  # nothing but black
    (x0, x1), (y0, y1) = bounds
    content = pixels[y0:y1, x0:x1]
    if min(content.shape[:2]) < 8 or detail(content) < MIN_DETAIL:
        return None
    centre = _centre(content, CENTRE)
    mirrored = content[:, ::-1]
    return KeyframeFingerprint((_bits(content), _bits(mirrored), _bits(centre), _bits(_centre(mirrored, CENTRE))))
