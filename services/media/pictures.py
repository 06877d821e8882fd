"""Turn decoded frames into what the pipeline sees: upright, square-pixel, progressive pictures.

Display geometry comes from the stream (sample aspect ratio) and each frame's display matrix
(rotation), so a portrait phone video or an anamorphic DVD rip is embedded the way a viewer sees it.
"""

from __future__ import annotations

import functools
import io
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image

from services.media.shots import Thumb

THUMB_SIZE = (64, 36)
_TRANSPOSE = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}


def clockwise_rotation(frame: av.VideoFrame) -> int:
    """Degrees to turn the coded picture clockwise for display (ffmpeg's autorotate convention)."""
    return round(-frame.rotation / 90) * 90 % 360


def display_size(width: int, height: int, sar: Fraction | None, rotation: int) -> tuple[int, int]:
    if sar and sar > 0 and sar != 1:
        width = max(1, round(width * sar))
    return (height, width) if rotation in (90, 270) else (width, height)


_PLANAR_8BIT = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv411p", "yuv410p"}


@functools.lru_cache(maxsize=64)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys = np.linspace(0, height - 1, THUMB_SIZE[1]).astype(np.intp)
    xs = np.linspace(0, width - 1, THUMB_SIZE[0]).astype(np.intp)
    return ys, xs


class Thumbnailer:
    """Tiny YUV pictures for shot detection: enough to see a cut, and nearly free to make.

    For 8-bit planar YUV (almost every upload) the grid is read straight from the decoded planes, rows
    then columns with `take` (measured: ~10x faster than one fancy index), so no pixel is converted.
    Other formats (RGB codecs such as Cinepak, 10-bit) go through one swscale context kept for the whole
    video: a fresh context per frame cost more than decoding such a frame (~0.5 ms at 320x240).
    """

    def __init__(self) -> None:
        self._reformatter = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> Thumb:
        w, h = THUMB_SIZE
        if frame.format.name in _PLANAR_8BIT:
            out = np.empty((3, h, w), np.uint8)
            for i, plane in enumerate(frame.planes):
                ys, xs = _grid(plane.height, plane.width)
                rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
                rows.take(ys, axis=0).take(xs, axis=1, out=out[i])
            return out
        small = self._reformatter.reformat(frame, w, h, "yuv444p", interpolation="POINT")
        return np.asarray(small.to_ndarray(), dtype=np.uint8)


def picture(frame: av.VideoFrame, sar: Fraction | None, short_side: int) -> Image.Image:
    """The frame as displayed, scaled down so its short side is at most `short_side`."""
    rotation = clockwise_rotation(frame)
    width, height = display_size(frame.width, frame.height, sar, 0)
    scale = min(1.0, short_side / min(width, height))
    target_w, target_h = max(2, round(width * scale)), max(2, round(height * scale))
    if frame.interlaced_frame:
        # keep one field: combing would otherwise show up as texture in the embedding
        rows = frame.reformat(width=target_w, height=frame.height, format="rgb24").to_ndarray()[::2]
        image = Image.fromarray(np.ascontiguousarray(rows)).resize((target_w, target_h), Image.Resampling.BILINEAR)
    else:
        image = frame.reformat(width=target_w, height=target_h, format="rgb24", interpolation="AREA").to_image()
    if rotation in _TRANSPOSE:
        image = image.transpose(_TRANSPOSE[rotation])
    return image


def jpeg(image: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
