"""Segments that carry no content of their own: black, white or flat colour, or a still with no detail.

Judged from the segment's stored thumbnail (the middle keyframe), not its vector: a black frame embeds to
the same point for every video and every model, which is exactly why it must not count as evidence.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, UnidentifiedImageError


def detail(thumb_b64: str) -> float:
    """Luma standard deviation (0..255) of the thumbnail at 32x32: about 0 for flat frames, tens for content."""
    try:
        with Image.open(io.BytesIO(base64.b64decode(thumb_b64))) as image:
            luma = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError):
        return 0.0
    return float(luma.std())


def informative(thumb_b64: str, min_detail: float) -> bool:
    """A segment without a thumbnail (over the column's size) cannot be judged, so it counts."""
    return not thumb_b64 or detail(thumb_b64) >= min_detail
