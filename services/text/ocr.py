"""Words on screen, read from keyframe pictures with PP-OCR (the detection, orientation and recognition ONNX
models that ship inside the `rapidocr` wheel, run by onnxruntime: CPU, or its CUDA provider when asked).

A picture's cost is bounded before it is spent: pictures are scaled so their long side is at most
`max_side` (an 8K frame costs what a 1280-px one does), degenerate ones (a side under 16 px, longer than 20:1)
are not read, and of the text regions detection finds only the `max_boxes` largest are recognised, each to at
most `max_line_aspect` times its height (a frame of thousands of tiny glyphs costs one detection and a bounded
recognition, not thousands).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

Pixels = npt.NDArray[np.uint8]  # (h, w, 3) RGB


@dataclass(frozen=True)
class TextLine:
    text: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 as shares of the picture's width and height
    confidence: float


@dataclass(frozen=True)
class OcrLimits:
    max_side: int = 1280
    min_side: int = 16
    max_aspect: float = 20.0
    max_boxes: int = 16  # text regions recognised per picture (the largest)
    max_line_aspect: float = 24.0  # a longer region is read to this many times its height (recognition cost)
    min_confidence: float = 0.6
    max_chars: int = 256  # of one line


def _bounded_engine(max_boxes: int, max_aspect: float, threads: int, gpu: bool, rec_batch: int) -> Any:
    from rapidocr import RapidOCR  # imported where used: the stage and the bench load it, nothing else

    class Bounded(RapidOCR):
        def crop_text_regions(self, img: np.ndarray, det_boxes: np.ndarray) -> list[np.ndarray]:
            crops = super().crop_text_regions(img, det_boxes)
            return [c[:, : max(1, int(max_aspect * c.shape[0]))] for c in crops]  # a line's first part only

        def detect_and_crop(self, img: np.ndarray, op_record: dict[str, Any]) -> tuple[list[np.ndarray], Any]:
            crops, det = super().detect_and_crop(img, op_record)
            boxes, scores = det.boxes, det.scores or []
            if boxes is not None and len(boxes) > max_boxes:
                keep = sorted(np.argsort([cv_area(b) for b in boxes])[::-1][:max_boxes])
                det = replace(det, boxes=boxes[keep], scores=[scores[i] for i in keep])
                crops = [crops[i] for i in keep]
            return crops, det

    logging.getLogger("RapidOCR").setLevel(logging.ERROR)  # "no text detected" is every textless frame
    engine_cfg = {
        "EngineConfig.onnxruntime.intra_op_num_threads": threads,
        "EngineConfig.onnxruntime.use_cuda": gpu,
        "Rec.rec_batch_num": rec_batch,
    }
    return Bounded(params={"Global.log_level": "error", **engine_cfg})


def cuda_available() -> bool:
    """Whether onnxruntime here can run on a GPU (the onnxruntime-gpu wheel on a machine with CUDA)."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def cv_area(box: np.ndarray) -> float:
    """A detected quadrilateral's area (shoelace)."""
    x, y = box[:, 0], box[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


class TextReader:
    """One PP-OCR engine (loaded on first use, ~1 s); `read` is not thread-safe: one reader per worker.
    `rec_batch` is how many text lines one recognition call takes (`bench.ocr` measures it)."""

    def __init__(
        self, limits: OcrLimits | None = None, threads: int = 1, gpu: bool | None = False, rec_batch: int = 6
    ) -> None:
        self.limits = limits or OcrLimits()
        self._threads, self._gpu, self._rec_batch = threads, cuda_available() if gpu is None else gpu, rec_batch
        self._engine: Any = None

    def _ocr(self) -> Any:
        if self._engine is None:
            limits = self.limits
            self._engine = _bounded_engine(
                limits.max_boxes, limits.max_line_aspect, self._threads, self._gpu, self._rec_batch
            )
        return self._engine

    def read(self, pixels: Pixels) -> list[TextLine]:
        """The lines of text in one picture, top to bottom; [] for a picture that cannot hold any."""
        limits = self.limits
        h, w = pixels.shape[:2]
        if pixels.ndim != 3 or min(h, w) < limits.min_side or max(h, w) > limits.max_aspect * min(h, w):
            return []
        scale = min(1.0, limits.max_side / max(h, w))
        if scale < 1:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))
            h, w = pixels.shape[:2]
        found = self._ocr()(np.ascontiguousarray(pixels[:, :, ::-1]))  # the engine takes BGR, as OpenCV reads
        if found.boxes is None or found.txts is None:
            return []
        lines = []
        for box, text, score in zip(found.boxes, found.txts, found.scores, strict=True):
            text = str(text).strip()[: limits.max_chars]
            if not text or float(score) < limits.min_confidence:
                continue
            xs, ys = np.asarray(box)[:, 0], np.asarray(box)[:, 1]
            shares = (
                float(max(0.0, xs.min()) / w),
                float(max(0.0, ys.min()) / h),
                float(min(w, xs.max()) / w),
                float(min(h, ys.max()) / h),
            )
            lines.append(TextLine(text, tuple(round(v, 4) for v in shares), round(float(score), 4)))  # type: ignore[arg-type]
        return sorted(lines, key=lambda line: (line.box[1], line.box[0]))

    def read_all(self, pictures: Sequence[Pixels]) -> list[list[TextLine]]:
        return [self.read(p) for p in pictures]
