"""Altered copies of a clip, as re-uploads make them: re-encoded, resized, cropped, letterboxed, mirrored,
trimmed, or cut together with others. For near-duplicate tests, benchmarks and calibration."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

Frame = npt.NDArray[np.uint8]  # (h, w, 3) RGB
FPS = 15
MAX_SIDE = 640  # variants are written at most this large: what the decoder keeps of a frame is smaller


def frames(path: Path, fps: int = FPS, start_s: float = 0.0) -> Iterator[Frame]:
    """RGB frames resampled to a constant rate (each output instant shows the latest decoded frame)."""
    next_t = start_s
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is None or frame.time < start_s:
                continue
            image = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
            while next_t <= frame.time + 1e-6:
                yield image
                next_t += 1 / fps


def duration_s(path: Path) -> float:
    with av.open(str(path)) as container:
        if container.duration:
            return float(container.duration) / av.time_base
        stream = container.streams.video[0]
        return float((stream.duration or 0) * (stream.time_base or 0))


def fit(image: Frame, max_side: int = MAX_SIDE) -> Frame:
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    nw, nh = max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2)
    if (nw, nh) == (w, h):
        return image
    return np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.BILINEAR))


def half(image: Frame) -> Frame:
    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((max(2, w // 2), max(2, h // 2)), Image.Resampling.BILINEAR))


def centre_crop(share: float) -> Callable[[Frame], Frame]:
    def crop(image: Frame) -> Frame:
        h, w = image.shape[:2]
        ch, cw = int(h * share), int(w * share)
        top, left = (h - ch) // 2, (w - cw) // 2
        return image[top : top + ch, left : left + cw]

    return crop


def letterbox(image: Frame) -> Frame:
    """Black bars above and below (a wide frame put in a 4:3 one) or at the sides (a narrow one in 16:9)."""
    h, w = image.shape[:2]
    if w / h >= 4 / 3:
        canvas = np.zeros((int(w * 3 / 4), w, 3), np.uint8)
        top = (canvas.shape[0] - h) // 2
        canvas[top : top + h] = image
    else:
        canvas = np.zeros((h, int(h * 16 / 9), 3), np.uint8)
        left = (canvas.shape[1] - w) // 2
        canvas[:, left : left + w] = image
    return canvas


def mirror(image: Frame) -> Frame:
    return np.ascontiguousarray(image[:, ::-1])


def write(out: Path, images: Iterator[Frame], fps: int = FPS, bit_rate: int | None = None) -> Path:
    """H.264 in MP4; the size is the first frame's (cropped to even sides), later frames are fitted to it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), "w") as container:
        stream = None
        for image in images:
            image = fit(image)
            if stream is None:
                h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
                stream = container.add_stream("libx264", rate=Fraction(fps))
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                if bit_rate:
                    stream.bit_rate = bit_rate
                stream.options = {"preset": "ultrafast"} if not bit_rate else {"preset": "veryfast"}
            if image.shape[:2] != (stream.height, stream.width):
                image = np.asarray(Image.fromarray(image).resize((stream.width, stream.height)))
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        if stream is None:
            raise ValueError(f"no frames to write to {out}")
        for packet in stream.encode():
            container.mux(packet)
    return out


TRANSFORMS: dict[str, Callable[[Frame], Frame]] = {
    "reencode": lambda f: f,
    "half": half,
    "crop80": centre_crop(0.8),
    "letterbox": letterbox,
    "mirror": mirror,
    "trim25": lambda f: f,
}


def variant(source: Path, kind: str, out: Path) -> Path:
    """One altered copy: `reencode` (150 kb/s), `half`, `crop80`, `letterbox`, `mirror`, `trim25` (the first
    quarter cut off)."""
    transform = TRANSFORMS[kind]
    start = duration_s(source) * 0.25 if kind == "trim25" else 0.0
    return write(
        out, (transform(f) for f in frames(source, start_s=start)), bit_rate=150_000 if kind == "reencode" else None
    )


def compilation(sources: Sequence[Path], out: Path, size: tuple[int, int] = (640, 360)) -> Path:
    """The clips one after another, each letterboxed into `size`: a compilation that contains each."""

    def boxed(image: Frame) -> Frame:
        w, h = size
        scale = min(w / image.shape[1], h / image.shape[0])
        nw, nh = max(2, int(image.shape[1] * scale)), max(2, int(image.shape[0] * scale))
        small = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.BILINEAR))
        canvas = np.zeros((h, w, 3), np.uint8)
        top, left = (h - nh) // 2, (w - nw) // 2
        canvas[top : top + nh, left : left + nw] = small
        return canvas

    return write(out, (boxed(f) for source in sources for f in frames(source)))
