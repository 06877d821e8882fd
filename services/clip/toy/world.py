"""A procedurally generated, captioned world: shapes x colours x counts x sizes x backgrounds.

Pictures and captions come from one `Scene`, so a model trained on them has a ground truth for every
query. Objects live in the central square of the frame (CLIP crops it out); a scene drawn at time `t`
has its objects moved along their motion, which a single keyframe cannot show, so captions leave it out.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

SHAPES = ("circle", "square", "triangle", "cross")
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "cross": "crosses"}
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "green": (40, 200, 70),
    "blue": (40, 80, 235),
    "yellow": (245, 220, 30),
    "white": (248, 248, 248),
    "purple": (155, 55, 205),
}
COUNTS = ("one", "two", "three")
SIZES = {"small": 0.075, "large": 0.16}  # object radius as a share of the central square's side
BACKGROUNDS = {"sky": "in the sky", "grass": "on grass", "water": "on water", "night": "at night", "sand": "on sand"}
Motion = Literal["left", "right", "up", "down"]
MOTIONS: tuple[Motion, ...] = ("left", "right", "up", "down")

Pixels = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    count: str
    size: str
    background: str

    @property
    def caption(self) -> str:
        """The canonical caption: what tests and the benchmark query with."""
        return f"{self._objects()} {BACKGROUNDS[self.background]}"

    def captions(self) -> list[str]:
        """Paraphrases used in training, the canonical one first."""
        objects, where = self._objects(), BACKGROUNDS[self.background]
        return [
            f"{objects} {where}",
            f"a picture of {objects} {where}",
            f"{where}, {objects}",
            f"{objects} {where}".replace("one ", "a ", 1) if self.count == "one" else f"{objects} seen {where}",
        ]

    def _objects(self) -> str:
        noun = self.shape if self.count == "one" else PLURALS[self.shape]
        return f"{self.count} {self.size} {self.colour} {noun}"


def all_scenes() -> list[Scene]:
    return [Scene(*combo) for combo in itertools.product(SHAPES, COLOURS, COUNTS, SIZES, BACKGROUNDS)]


def split_scenes(held_out_share: float = 0.1, seed: int = 11) -> tuple[list[Scene], list[Scene]]:
    """(training, held-out) combinations: held-out captions are never seen in training."""
    scenes = all_scenes()
    rng = np.random.default_rng(seed)
    held = set(rng.choice(len(scenes), size=round(len(scenes) * held_out_share), replace=False).tolist())
    return [s for i, s in enumerate(scenes) if i not in held], [s for i, s in enumerate(scenes) if i in held]


@dataclass(frozen=True)
class Layout:
    """Where a scene's objects start and how they move (share of the square per second)."""

    centres: tuple[tuple[float, float], ...]
    motion: Motion
    speed: float
    texture_seed: int


def layout(scene: Scene, seed: int) -> Layout:
    """Objects in distinct cells of a 3x3 grid, jittered inside their cell, so they never overlap."""
    rng = np.random.default_rng(seed)
    radius = SIZES[scene.size]
    n = COUNTS.index(scene.count) + 1
    cell = 1 / 3
    slack = max(0.0, cell / 2 - radius - 0.01)
    cells = rng.choice(9, size=n, replace=False)
    centres = tuple(
        (
            float((c % 3 + 0.5) * cell + rng.uniform(-slack, slack)),
            float((c // 3 + 0.5) * cell + rng.uniform(-slack, slack)),
        )
        for c in cells
    )
    motion = MOTIONS[int(rng.integers(len(MOTIONS)))]
    return Layout(centres, motion, float(rng.uniform(0.03, 0.06)), int(rng.integers(1 << 30)))


def render(scene: Scene, lay: Layout, width: int, height: int, t: float = 0.0) -> Pixels:
    """RGB (height, width, 3): the background fills the frame, the objects the central square.

    The group moves as one along its motion and bounces off the square's edges, so objects never
    collide and the count stays visible in every frame."""
    img = _background(scene.background, width, height, lay.texture_seed)
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    radius = SIZES[scene.size]
    axis = 0 if lay.motion in ("left", "right") else 1
    sign = -1.0 if lay.motion in ("left", "up") else 1.0
    coords = [c[axis] for c in lay.centres]
    low, high = min(coords) - radius - 0.01, 1 - 0.01 - (max(coords) + radius)
    shift = _bounce(sign * lay.speed * t, -max(0.0, low), max(0.0, high))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = radius * side
    colour = np.array(COLOURS[scene.colour], dtype=np.float32)
    for cx, cy in lay.centres:
        px, py = (cx + shift, cy) if axis == 0 else (cx, cy + shift)
        ox, oy = left + px * side, top + py * side
        outline = _mask(scene.shape, xx - ox, yy - oy, r + max(1.0, side / 90))
        img[outline] *= 0.25
        img[_mask(scene.shape, xx - ox, yy - oy, r)] = colour
    return np.clip(img, 0, 255).astype(np.uint8)


def _bounce(p: float, lo: float, hi: float) -> float:
    """`p` folded into [lo, hi] as a triangle wave (0 maps to 0)."""
    span = hi - lo
    if span <= 1e-6:
        return 0.0
    q = (p - lo) % (2 * span)
    return lo + (q if q <= span else 2 * span - q)


def _mask(shape: str, dx: npt.NDArray[np.float32], dy: npt.NDArray[np.float32], r: float) -> npt.NDArray[np.bool_]:
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= r * 0.82
    if shape == "triangle":
        return (dy <= r * 0.6) & (np.abs(dx) <= (dy + r) * 0.62)
    if shape == "cross":
        arm = r * 0.32
        return ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))
    raise ValueError(f"unknown shape {shape!r}")


def _background(kind: str, width: int, height: int, seed: int) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    v = yy / max(1, height - 1)
    img = np.empty((height, width, 3), dtype=np.float32)
    if kind == "sky":
        top, bottom = np.array([70, 135, 225]), np.array([185, 215, 250])
        img[:] = top + (bottom - top) * v[..., None]
        for _ in range(3):  # soft clouds
            cx, cy, s = rng.uniform(0, width), rng.uniform(0, height * 0.6), rng.uniform(0.08, 0.2) * width
            blob = np.exp(-(((xx - cx) / (2 * s)) ** 2 + ((yy - cy) / s) ** 2))
            img += (245 - img) * (0.7 * blob)[..., None]
    elif kind == "grass":
        img[:] = np.array([55, 125, 40])
        stripes = np.sin(xx * rng.uniform(0.6, 1.0) + 2 * np.sin(yy * 0.05)) * 12
        img += stripes[..., None] + rng.normal(0, 10, (height, width, 1))
    elif kind == "water":
        img[:] = np.array([20, 65, 135])
        waves = np.sin(yy * rng.uniform(0.25, 0.4) + 1.5 * np.sin(xx * 0.06 + rng.uniform(0, 6))) * 18
        img += waves[..., None] * np.array([0.6, 0.9, 1.0])
    elif kind == "night":
        img[:] = np.array([10, 12, 35]) + np.array([10, 10, 25]) * v[..., None]
        stars = rng.random((height, width)) < 0.004
        img[stars] = 230
    elif kind == "sand":
        img[:] = np.array([215, 190, 135])
        dunes = np.sin(yy * 0.08 + 3 * np.sin(xx * 0.02 + rng.uniform(0, 6))) * 10
        img += dunes[..., None] + rng.normal(0, 8, (height, width, 1))
    else:
        raise ValueError(f"unknown background {kind!r}")
    return img
