"""Generate real video files with known shot boundaries, for the demo, tests and the shot benchmark;
and clips of the toy world (`write_world_clip`), whose captions say what each shot shows.

Each scene is a smooth random texture with a few solid shapes, panned a few pixels per frame (motion
that must not read as a cut). A hard cut switches to a new scene; a fade goes through black over
`fade_s` and comes back on a new scene, its boundary being the first frame after the black.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from services.clip.toy.world import Scene, layout, render


def write_clip(
    path: Path,
    seconds: float = 4.0,
    fps: int = 12,
    size: tuple[int, int] = (160, 120),
    seed: int = 0,
    cuts: Sequence[float] = (),
    fades: Sequence[float] = (),
    fade_s: float = 1.0,
    codec: str = "mpeg4",
    pix_fmt: str = "yuv420p",
    pan_px: int = 2,
) -> Path:
    rng = np.random.default_rng(seed)
    w, h = size
    path.parent.mkdir(parents=True, exist_ok=True)
    cut_frames = {round(c * fps) for c in cuts}
    fade_frames = [(round((f - fade_s / 2) * fps), round((f + fade_s / 2) * fps)) for f in fades]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        scene = _scene(rng, w, h)
        for i in range(round(seconds * fps)):
            if i in cut_frames:
                scene = _scene(rng, w, h)
            gain = 1.0
            for start, end in fade_frames:
                if start <= i < end:
                    middle = (start + end) / 2
                    gain = abs(i - middle) / ((end - start) / 2)
                    gain = 0.0 if gain < 0.25 else gain  # a few fully black frames in the middle
                    if i == round(middle):
                        scene = _scene(rng, w, h)
            frame = (np.roll(scene, shift=i * pan_px, axis=1) * gain).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _scene(rng: np.random.Generator, w: int, h: int) -> npt.NDArray[np.uint8]:
    coarse = rng.integers(30, 226, size=(max(2, h // 16), max(2, w // 16), 3)).astype(np.float32)
    rows = np.linspace(0, coarse.shape[0] - 1, h)
    cols = np.linspace(0, coarse.shape[1] - 1, w)
    img = coarse[np.round(rows).astype(int)][:, np.round(cols).astype(int)]
    img = (img + np.roll(img, 3, axis=0) + np.roll(img, 3, axis=1) + np.roll(img, -3, axis=1)) / 4
    for _ in range(4):
        x0, y0 = int(rng.integers(0, max(1, w - 20))), int(rng.integers(0, max(1, h - 20)))
        img[y0 : y0 + int(rng.integers(10, max(11, h // 2))), x0 : x0 + int(rng.integers(10, max(11, w // 2)))] = (
            rng.integers(0, 256, 3)
        )
    return img.astype(np.uint8)


def write_demo_clips(folder: Path, count: int = 6) -> list[Path]:
    return [
        write_clip(folder / f"synthetic-{i:02d}.mp4", seconds=8.0, seed=i, cuts=(3.0,), fades=(6.0,))
        for i in range(count)
    ]


def write_world_clip(
    path: Path,
    scenes: Sequence[Scene],
    scene_s: float = 3.0,
    fps: int = 12,
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
    codec: str = "libx264",
) -> Path:
    """A clip of the toy world: one shot per scene, hard cuts between them (at multiples of `scene_s`),
    the objects of each shot moving along their layout's motion. Captions of the scenes are the truth a
    text query is checked against."""
    w, h = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for k, scene in enumerate(scenes):
            lay = layout(scene, seed * 1000 + k)
            for i in range(round(scene_s * fps)):
                frame = render(scene, lay, w, h, t=i / fps)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


DEMO_WORLD: tuple[tuple[Scene, ...], ...] = (
    (Scene("circle", "red", "two", "large", "grass"), Scene("square", "yellow", "three", "small", "sky")),
    (Scene("triangle", "blue", "one", "large", "water"), Scene("cross", "white", "two", "small", "night")),
    (Scene("square", "purple", "three", "large", "sand"), Scene("circle", "green", "one", "small", "sky")),
)


def write_demo_world(folder: Path) -> dict[Path, list[str]]:
    """The demo's toy-world clips (3 s a scene) and what each scene shows, in order."""
    return {
        write_world_clip(folder / f"toy-world-{i + 1}.mp4", scenes, seed=i): [s.caption for s in scenes]
        for i, scenes in enumerate(DEMO_WORLD)
    }
