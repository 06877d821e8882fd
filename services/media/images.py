"""Keyframe JPEGs as the model and result pages need them: RGB pixels, and small thumbnails."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

THUMB_SHORT_SIDE = 96
THUMB_LONG_SIDE = 384  # bounds a thumbnail of an extreme aspect ratio (JPEG stops at 65,500 pixels a side)


def jpeg_to_pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def thumbnail(jpeg: bytes) -> bytes:
    """A small JPEG for result pages; Milvus stores it beside the vector."""
    with Image.open(io.BytesIO(jpeg)) as img:
        scale = min(THUMB_SHORT_SIDE / min(img.size), THUMB_LONG_SIDE / max(img.size))
        small = img.convert("RGB").resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=75)
    return buf.getvalue()
