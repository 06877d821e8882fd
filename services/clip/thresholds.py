"""Per-model score thresholds: "no good match" for text and image queries, and near-duplicate.

Every model's scores live on their own scale (a real ViT-B/32 gives text↔image cosines around 0.3, our toy
model near 0.9), so a threshold belongs to a model, never to the product. Two sources, the first wins:
the thresholds file in settings (written by `clipstream calibrate` from the catalogue itself), then the
thresholds a model folder ships in its `clipstream.json` (the toy model measures its own at training).
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from services.clip.card import ModelCard
from services.clip.version import weights_version
from services.common.messages import ModelRef

QueryKind = Literal["text", "image"]
NAMES = ("text_match", "image_match", "duplicate", "prompt_match")


class Thresholds(BaseModel):
    text_match: float | None = Field(default=None, description="a text query's best score below this: no good match")
    image_match: float | None = Field(default=None, description="the same for image and video queries")
    duplicate: float | None = Field(default=None, description="a segment scoring at least this is a near-duplicate")
    prompt_match: float | None = Field(
        default=None, description="a generation request's prompt at least this close to a cached one is a cache hit"
    )
    source: str = Field(default="none", description="model | calibrate")
    measured: dict[str, Any] = Field(default_factory=dict, description="precision/recall behind each value")

    def match(self, kind: QueryKind) -> float | None:
        return self.text_match if kind == "text" else self.image_match

    def values(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in NAMES}

    def updated(self, new: Thresholds) -> Thresholds:
        """`new`'s values where it has one, this entry's elsewhere. A calibration measures some thresholds
        only (no catalogue can measure the cache's `prompt_match`, and a cut that does not separate is not
        written): replacing the whole entry would drop the rest and let each consumer fall back to its
        product-wide default, which is on no model's scale."""
        old, fresh = self.values(), new.values()
        before = self.measured.get("kept", {})
        kept = {n: before.get(n, self.source) for n, v in old.items() if fresh[n] is None and v is not None}
        measured = {n: self.measured[n] for n in kept if n in self.measured} | new.measured
        return new.model_copy(
            update={n: fresh[n] if fresh[n] is not None else old[n] for n in NAMES}
            | {"measured": measured | ({"kept": kept} if kept else {})}
        )

    def changes(self, new: Thresholds) -> dict[str, tuple[float | None, float | None]]:
        """(old, new) of every threshold whose value differs."""
        old, fresh = self.values(), new.values()
        return {n: (old[n], fresh[n]) for n in NAMES if old[n] != fresh[n]}


def model_key(ref: ModelRef) -> str:
    return f"{ref.name}:{ref.version}"


class ThresholdBook:
    """The thresholds file, re-read when it changes (calibrate takes effect without a restart)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._entries: dict[str, Thresholds] = {}
        self._shipped: dict[str, Thresholds] = {}

    def get(self, ref: ModelRef, *specs: str) -> Thresholds:
        """Calibrated thresholds of `ref`, and for any it lacks those shipped in the first of `specs` (model
        folders, e.g. the one recorded on the collection and the one configured) whose weights *are* `ref`:
        an entry written before calibrate kept what it did not measure must not unset the model's own."""
        entries = self._read()
        shipped = self._shipped_for(ref, specs)
        return shipped.updated(entries[model_key(ref)]) if model_key(ref) in entries else shipped

    def put(self, ref: ModelRef, thresholds: Thresholds) -> None:
        """Replace `ref`'s entry. Atomic: a reader sees the old file or the new one, never half of it."""
        with self._lock:
            self._write_unlocked(ref, thresholds)

    def update(self, ref: ModelRef, measured: Thresholds, *specs: str) -> tuple[Thresholds, Thresholds]:
        """Write what was `measured` over `ref`'s current thresholds (see `get`), keeping every one it has
        no value for; returns (before, after) so the caller can say what changed."""
        before = self.get(ref, *specs)
        after = before.updated(measured)
        with self._lock:
            self._write_unlocked(ref, after)
        return before, after

    def _write_unlocked(self, ref: ModelRef, thresholds: Thresholds) -> None:
        entries = dict(self._read_unlocked())
        entries[model_key(ref)] = thresholds
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".thresholds-")
        with os.fdopen(fd, "w") as fh:
            json.dump({k: v.model_dump() for k, v in entries.items()}, fh, indent=2)
        os.replace(tmp, self.path)
        self._stamp = None

    def _shipped_for(self, ref: ModelRef, specs: tuple[str, ...]) -> Thresholds:
        for spec in specs:
            if spec and Path(spec).is_dir() and _version_of(spec) == ref.version:
                return self._model_defaults(spec)
        return Thresholds()

    def _read(self) -> dict[str, Thresholds]:
        with self._lock:
            return self._read_unlocked()

    def _read_unlocked(self) -> dict[str, Thresholds]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._entries, self._stamp = {}, None
            return self._entries
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            raw = json.loads(self.path.read_text())
            self._entries = {k: Thresholds.model_validate(v) for k, v in raw.items()}
            self._stamp = stamp
        return self._entries

    def _model_defaults(self, spec: str) -> Thresholds:
        if spec not in self._shipped:
            shipped = ModelCard.read(spec).thresholds
            self._shipped[spec] = Thresholds.model_validate(shipped | {"source": "model"}) if shipped else Thresholds()
        return self._shipped[spec]


@functools.lru_cache(maxsize=8)
def _version_of(spec: str) -> str:
    return weights_version(Path(spec))


@dataclass(frozen=True)
class Choice:
    threshold: float
    precision: float
    recall: float
    positives: int
    negatives: int

    @property
    def chance(self) -> float:
        """The precision of calling everything a match: a cut no better than this separates nothing."""
        return self.positives / (self.positives + self.negatives)

    def separates(self, margin: float = 0.05) -> bool:
        return self.precision >= self.chance + margin

    def as_dict(self) -> dict[str, float | int]:
        return {
            "threshold": round(self.threshold, 4),
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "positives": self.positives,
            "negatives": self.negatives,
        }


def choose_threshold(positives: np.ndarray, negatives: np.ndarray, beta: float = 1.0) -> Choice:
    """The cut that maximises F-beta of "score >= t means a match" (beta < 1 weighs precision more; ties:
    the higher precision, then the middle of the run, so a clean separation cuts in the middle of the gap)."""
    pos = np.sort(np.asarray(positives, dtype=np.float64))
    neg = np.sort(np.asarray(negatives, dtype=np.float64))
    if pos.size == 0 or neg.size == 0:
        raise ValueError("need positive and negative scores to choose a threshold")
    scores = np.unique(np.concatenate([pos, neg]))
    cuts = np.concatenate([[scores[0] - 1e-6], (scores[:-1] + scores[1:]) / 2, [scores[-1] + 1e-6]])
    tp = pos.size - np.searchsorted(pos, cuts, side="left")
    fp = neg.size - np.searchsorted(neg, cuts, side="left")
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
    recall = tp / pos.size
    b2 = beta * beta
    denominator = b2 * precision + recall
    f1 = np.where(denominator > 0, (1 + b2) * precision * recall / np.maximum(denominator, 1e-12), 0.0)
    best = np.flatnonzero(np.isclose(f1, f1.max()))
    best = best[np.isclose(precision[best], precision[best].max())]
    i = int(best[len(best) // 2])
    return Choice(float(cuts[i]), float(precision[i]), float(recall[i]), int(pos.size), int(neg.size))
