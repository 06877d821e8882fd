"""Faces in keyframe pictures: OpenCV's Haar frontal-face cascade (its data ships inside the OpenCV wheel).

Bounded before it costs: detection runs on a grey copy scaled to at most `max_side` (a cascade's cost grows
with the pixels it scans and the scales it tries), faces smaller than `min_share` of the short side are not
looked for, and only the `max_faces` largest are kept. A detection's `score` is the cascade's level weight
(higher: more certain); Haar has no calibrated confidence.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from services.common.messages import ModelRef

Pixels = npt.NDArray[np.uint8]  # (h, w, 3) RGB
CROP_SIDE = 224  # what a face crop is resized to (the model sees this)


@dataclass(frozen=True)
class FaceLimits:
    max_side: int = 512
    min_share: float = 0.08  # of the picture's short side
    max_faces: int = 8
    min_neighbours: int = 5
    min_side: int = 24  # pictures smaller than this hold no face worth finding
    max_aspect: float = 20.0


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 as shares of the picture's sides
    score: float


@functools.cache
def _cascade() -> cv2.CascadeClassifier:
    found = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")  # type: ignore[attr-defined]
    if found.empty():
        raise RuntimeError("OpenCV's Haar face cascade is missing from its wheel")
    return found


def detect(pixels: Pixels, limits: FaceLimits | None = None) -> list[Face]:
    """The faces in a picture, largest first; [] for a picture that cannot hold one."""
    limits = limits or FaceLimits()
    h, w = pixels.shape[:2]
    if pixels.ndim != 3 or min(h, w) < limits.min_side or max(h, w) > limits.max_aspect * min(h, w):
        return []
    scale = min(1.0, limits.max_side / max(h, w))
    grey = np.asarray(Image.fromarray(pixels).convert("L"))
    if scale < 1:
        grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    gh, gw = grey.shape
    smallest = max(20, int(limits.min_share * min(gh, gw)))
    boxes, _, weights = _cascade().detectMultiScale3(
        grey,
        scaleFactor=1.1,
        minNeighbors=limits.min_neighbours,
        minSize=(smallest, smallest),
        outputRejectLevels=True,
    )
    faces = [
        Face(
            (round(x / gw, 4), round(y / gh, 4), round((x + bw) / gw, 4), round((y + bh) / gh, 4)),
            round(float(weight), 3),
        )
        for (x, y, bw, bh), weight in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).ravel(), strict=True)
    ]
    faces.sort(key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
    return faces[: limits.max_faces]


def crop(pixels: Pixels, face: Face, margin: float = 0.2) -> Pixels:
    """The face with a margin around it, square, at CROP_SIDE: what a model embeds."""
    h, w = pixels.shape[:2]
    x0, y0, x1, y1 = face.box
    cx, cy = (x0 + x1) / 2 * w, (y0 + y1) / 2 * h
    half = max((x1 - x0) * w, (y1 - y0) * h) * (1 + margin) / 2
    left, top = max(0, round(cx - half)), max(0, round(cy - half))
    right, bottom = min(w, round(cx + half)), min(h, round(cy + half))
    region = Image.fromarray(pixels[top:bottom, left:right])
    return np.asarray(region.resize((CROP_SIDE, CROP_SIDE), Image.Resampling.BICUBIC))


class FaceModel:
    """A face-embedding model given by path, in place of the served CLIP for face crops: ONNX with one input,
    NCHW float32 RGB of a fixed side (read from the model; 112 when it is dynamic), scaled as ArcFace exports
    expect ((x - 127.5) / 128), and one embedding output, L2-normalised here. Its `ref` (the file's name and a
    hash of its bytes) names the faces collection its vectors go to, so two models never share one."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        (shape_in,) = [i.shape for i in self.session.get_inputs()]
        side = shape_in[2] if len(shape_in) == 4 and isinstance(shape_in[2], int) else 112
        self.side = int(side)
        probe = self._run(np.zeros((1, self.side, self.side, 3), np.uint8))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        self.ref = ModelRef(name=f"face-{path.stem}", version=digest, dim=int(probe.shape[1]))

    def _run(self, crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        batch = (crops.astype(np.float32).transpose(0, 3, 1, 2) - 127.5) / 128.0
        name = self.session.get_inputs()[0].name
        (out,) = self.session.run(None, {name: batch})[:1]
        vectors = np.asarray(out, dtype=np.float32).reshape(len(crops), -1)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def embed(self, crops: Sequence[Pixels]) -> npt.NDArray[np.float32]:
        """(len(crops), dim) unit vectors of face crops (any size: resized to the model's side)."""
        if not crops:
            return np.zeros((0, self.ref.dim), dtype=np.float32)
        sized = [np.asarray(Image.fromarray(c).resize((self.side, self.side), Image.Resampling.BICUBIC)) for c in crops]
        return self._run(np.stack(sized))


@functools.cache
def face_model(path: Path | None) -> FaceModel | None:
    """The configured face model, loaded once per process; None: face crops are embedded by the served CLIP."""
    return FaceModel(path) if path is not None else None
