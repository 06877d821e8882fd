"""Generate small real video files (PyAV, mpeg4) for demos and tests when no sample clips are at hand."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_clip(
    path: Path, seconds: float = 4.0, fps: int = 12, size: tuple[int, int] = (160, 120), seed: int = 0,
    cuts: tuple[float, ...] = (),
) -> Path:
    """A clip of moving coloured shapes; each cut switches to a scene drawn from a new seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        scene = _scene(rng, w, h)
        boundaries = [round(c * fps) for c in cuts]
        for i in range(round(seconds * fps)):
            if i in boundaries:
                scene = _scene(rng, w, h)
            frame = np.roll(scene, shift=i * 2, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _scene(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    base = rng.integers(0, 256, size=3)
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = base
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        img[y0 : y0 + int(rng.integers(10, h // 2)), x0 : x0 + int(rng.integers(10, w // 2))] = rng.integers(0, 256, 3)
    return img


def write_demo_clips(folder: Path, count: int = 6) -> list[Path]:
    return [write_clip(folder / f"synthetic-{i:02d}.mp4", seconds=5.0, seed=i) for i in range(count)]
