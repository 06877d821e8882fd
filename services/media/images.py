"""Keyframe JPEGs as the model and result pages need them: RGB pixels, and small thumbnails."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from services.media.errors import DecodeError

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


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = 40_000_000
    max_side: int = 16384
    max_aspect: float = 20.0
    short_side: int = 448  # larger images are scaled down to this: the model sees 224


def fit_pixels(data: bytes, limits: ImageLimits) -> np.ndarray:
    """An image given to us (a query, a reference) as RGB pixels: its size checked from the header before any
    pixel is decoded, and scaled down to what the model can use. Refusals are `DecodeError`s with a reason."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > limits.max_pixels or max(width, height) > limits.max_side:
                raise DecodeError(
                    "image_too_large",
                    f"image of {width}x{height} is too large (at most {limits.max_side} px a side, "
                    f"{limits.max_pixels} pixels)",
                )
            if max(width, height) > limits.max_aspect * min(width, height):
                raise DecodeError("bad_image", f"image of {width}x{height} is longer than {limits.max_aspect:g}:1")
            scale = limits.short_side / min(width, height)
            if scale < 1:
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                img.draft("RGB", size)  # JPEGs decode at a reduced scale directly
                rgb = img.convert("RGB").resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
            else:
                rgb = img.convert("RGB")
            return np.asarray(rgb, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
        raise DecodeError("bad_image", f"not a readable image: {exc}") from exc
