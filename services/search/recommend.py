"""Recommendations from examples: a Rocchio query vector over the video-level collection.

Positive examples (videos, texts, images) pull the query towards them, negative ones push it away:
q = mean(positives) - beta * mean(negatives), normalised. Several reference images as positives make a
style query. Videos stand for their video-level vector (the mean of their segments)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.common.filters import Filters

NEGATIVE_WEIGHT = 0.5  # Rocchio's beta (alpha = 1): a negative demotes what resembles it, without inverting


@dataclass(frozen=True)
class Example:
    """Exactly one of: an indexed video's id, a text, an image's bytes."""

    video_id: str | None = None
    text: str | None = None
    image: bytes | None = None


Vector = npt.NDArray[np.floating]


def query_vector(positives: Sequence[Vector], negatives: Sequence[Vector]) -> list[float]:
    """The Rocchio vector of the examples' (normalised) vectors."""
    if not positives:
        raise ValueError("at least one positive example is needed")
    q = np.mean([_unit(v) for v in positives], axis=0)
    if negatives:
        q = q - NEGATIVE_WEIGHT * np.mean([_unit(v) for v in negatives], axis=0)
    norm = float(np.linalg.norm(q))
    if norm < 1e-6:
        raise ValueError("the negative examples cancel the positive ones")
    return (q / norm).astype(float).tolist()


def _unit(v: Vector) -> npt.NDArray[np.float64]:
    flat = np.asarray(v, dtype=np.float64).reshape(-1)
    return flat / max(float(np.linalg.norm(flat)), 1e-12)


def candidate_filter(filters: Filters | None, positives: Sequence[Example], exclude: Sequence[str]) -> Filters:
    """What a recommendation may return: everything the caller's filters allow (their tenant, and whatever they
    narrowed to), less `exclude` and the positive example videos (more like a video is never that video)."""
    left_out = sorted({*exclude, *(e.video_id for e in positives if e.video_id)})
    return (filters or Filters()).model_copy(update={"exclude_video_ids": left_out or None})
