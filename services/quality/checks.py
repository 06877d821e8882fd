"""The per-video checks, on unit vectors (one per segment, in time order). Pure numpy, no I/O.

- **prompt alignment**: each segment's cosine to the prompt's text vector; runs of consecutive segments
  below the model's threshold (its calibrated `text_match`: the score under which a text query has no good
  match) are flagged with their time range.
- **style**: distance (1 - cosine) of each segment to the references' centroid, in units of the
  references' own spread around it (a z-score; the spread has a floor, so one reference or identical ones
  still give a scale). Runs above `style_z` are flagged.
- **character**: with reference images that show a face, each shot's main face (its largest) against the
  reference faces: flagged where it scores below a floor, or well below the video's best-matching shot (a
  face swapped in, a character drifting away from its reference).
- **temporal**: cosine between adjacent segments; a drop below the model's `duplicate` threshold (the two
  are not even near-duplicates of each other) is a sudden jump. A generated video is one take, so every
  boundary is inside it, unless the uploader says cuts are intended: then only boundaries the decoder made
  by splitting a long shot (a segment of the maximum length) are inside a shot.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from services.common.messages import QcCheck, QcFlag, QcSegment, QcVerdict

Vectors = npt.NDArray[np.float32]
ADJACENT_S = 0.5  # a gap longer than this between two segments (dropped frames, a skipped blank) is no boundary


@dataclass(frozen=True)
class QcConfig:
    alignment_threshold: float
    jump_threshold: float
    style_z: float = 4.0
    min_spread: float = 0.02
    cuts_allowed: bool = False
    max_segment_s: float = 10.0
    character_drop: float = 0.05  # a shot's face this far below the best-matching shot's has drifted
    character_floor: float = 0.5  # and any below this


@dataclass(frozen=True)
class SegmentVector:
    index: int
    start_s: float
    end_s: float
    vector: Vectors


@dataclass(frozen=True)
class SegmentFace:
    """A shot's main face (its largest over the shot's keyframes), or None when the shot shows no face."""

    index: int
    start_s: float
    end_s: float
    vector: Vectors | None


@dataclass(frozen=True)
class QcResult:
    verdict: QcVerdict
    checks: list[QcCheck]
    flags: list[QcFlag]
    segments: list[QcSegment]


def unit(vectors: npt.ArrayLike) -> Vectors:
    array = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.asarray(array / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def run_checks(
    segments: Sequence[SegmentVector],
    config: QcConfig,
    prompt: Vectors | None = None,
    references: Vectors | None = None,
    faces: Sequence[SegmentFace] | None = None,
    reference_faces: Vectors | None = None,
) -> QcResult:
    """All checks that apply; `nothing_to_check` without a prompt or references (not a failure)."""
    if prompt is None and references is None:
        return QcResult("nothing_to_check", [], [], [])
    ordered = sorted(segments, key=lambda s: s.start_s)
    if not ordered:
        return QcResult("nothing_to_check", [], [], [])
    vectors = unit([s.vector for s in ordered])
    checks: list[QcCheck] = []
    flags: list[QcFlag] = []
    alignment: list[float | None] = [None] * len(ordered)
    deviation: list[float | None] = [None] * len(ordered)
    if prompt is not None:
        checks.append("prompt_alignment")
        scores = vectors @ unit(prompt)[0]
        alignment = [round(float(x), 6) for x in scores]
        flags += _runs(
            ordered,
            [float(x) < config.alignment_threshold for x in scores],
            scores,
            "prompt_alignment",
            config.alignment_threshold,
            lambda worst: f"do not show the prompt: cosine down to {worst:.3f}, below {config.alignment_threshold:g}",
        )
    if references is not None and len(references):
        checks.append("style")
        z = style_deviation(vectors, unit(references), config.min_spread)
        deviation = [round(float(x), 4) for x in z]
        flags += _runs(
            ordered,
            [float(x) > config.style_z for x in z],
            z,
            "style",
            config.style_z,
            lambda worst: (
                f"deviate from the references' style: {worst:.1f} spreads from their centroid, above {config.style_z:g}"
            ),
        )
    character: list[float | None] = [None] * len(ordered)
    if faces is not None and reference_faces is not None and len(reference_faces):
        checks.append("character")
        by_index = {f.index: f for f in faces}
        shots = [by_index.get(s.index) or SegmentFace(s.index, s.start_s, s.end_s, None) for s in ordered]
        scores, found = character_drift(shots, unit(reference_faces), config.character_drop, config.character_floor)
        character = [None if x is None else round(x, 6) for x in scores]
        flags += found
    checks.append("temporal")
    continuity: list[float | None] = [None] * len(ordered)
    for i in range(1, len(ordered)):
        before, after = ordered[i - 1], ordered[i]
        if after.start_s - before.end_s > ADJACENT_S:
            continue
        cosine = float(vectors[i] @ vectors[i - 1])
        continuity[i] = round(cosine, 6)
        inside = not config.cuts_allowed or before.end_s - before.start_s >= config.max_segment_s - 0.05
        if inside and cosine < config.jump_threshold:
            flags.append(
                QcFlag(
                    check="temporal",
                    start_s=after.start_s,
                    end_s=after.end_s,
                    score=round(cosine, 6),
                    threshold=config.jump_threshold,
                    reason=f"sudden change at {after.start_s:.2f} s: cosine {cosine:.3f} to the segment before, "
                    f"below {config.jump_threshold:g}",
                )
            )
    rows = [
        QcSegment(
            segment_index=s.index,
            start_s=s.start_s,
            end_s=s.end_s,
            alignment=alignment[i],
            deviation=deviation[i],
            continuity=continuity[i],
            character=character[i],
        )
        for i, s in enumerate(ordered)
    ]
    flags.sort(key=lambda f: (f.start_s, f.check))
    return QcResult("flagged" if flags else "pass", checks, flags, rows)


def character_drift(
    faces: Sequence[SegmentFace], references: Vectors, drop: float, floor: float
) -> tuple[list[float | None], list[QcFlag]]:
    """The main face of each shot (its largest) against the reference faces: its best cosine to them, and runs
    of shots whose face drifts, i.e. scores below `floor` or more than `drop` below the video's best-matching
    shot (the character as the video shows it at its most faithful). Shots without a face are not judged."""
    scores = [float(np.max(references @ unit(f.vector)[0])) if f.vector is not None else None for f in faces]
    known = [s for s in scores if s is not None]
    if not known:
        return scores, []
    bar = max(floor, max(known) - drop)
    bad = [s is not None and s < bar for s in scores]
    values = [s if s is not None else bar for s in scores]
    shots = [SegmentVector(f.index, f.start_s, f.end_s, np.zeros(1, np.float32)) for f in faces]
    flags = _runs(
        shots,
        bad,
        values,
        "character",
        bar,
        lambda worst: f"show a face unlike the reference: cosine down to {worst:.3f}, below {bar:.3f}",
    )
    return scores, flags


def main_faces(segments: Sequence[SegmentVector], rows: Sequence[Mapping[str, Any]]) -> list[SegmentFace]:
    """Each segment's largest face (rows of the faces collection: segment index, box as JSON, vector)."""
    largest: dict[int, tuple[float, Vectors]] = {}
    for row in rows:
        x0, y0, x1, y1 = json.loads(row["box"])
        area, index = (x1 - x0) * (y1 - y0), int(row["segment_index"])
        if index not in largest or area > largest[index][0]:
            largest[index] = (area, np.asarray(row["vector"], dtype=np.float32))
    return [
        SegmentFace(s.index, s.start_s, s.end_s, largest[s.index][1] if s.index in largest else None) for s in segments
    ]


def style_deviation(vectors: Vectors, references: Vectors, min_spread: float) -> npt.NDArray[np.float64]:
    """Each vector's distance to the references' centroid, as a z-score against the references' own."""
    centroid = unit(references.mean(axis=0))[0]
    own = 1.0 - references @ centroid
    spread = max(float(own.std()), min_spread)
    return np.asarray(((1.0 - vectors @ centroid) - float(own.mean())) / spread, dtype=np.float64)


def _runs(
    segments: Sequence[SegmentVector],
    bad: Sequence[bool],
    scores: npt.ArrayLike,
    check: QcCheck,
    threshold: float,
    describe: Callable[[float], str],
) -> list[QcFlag]:
    """One flag per run of consecutive bad segments, spanning the run, with the run's worst score: the one
    farthest past the threshold (a run's scores are all on the bad side of it, whichever side that is)."""
    values = [float(x) for x in np.asarray(scores).ravel()]
    flags, start = [], None
    for i, is_bad in enumerate([*bad, False]):
        if is_bad and start is None:
            start = i
        elif not is_bad and start is not None:
            low, high, score = (
                segments[start].start_s,
                segments[i - 1].end_s,
                max(values[start:i], key=lambda v: abs(v - threshold)),
            )
            flags.append(
                QcFlag(
                    check=check,
                    start_s=low,
                    end_s=high,
                    score=round(score, 6),
                    threshold=threshold,
                    reason=f"{i - start} segment(s) from {low:.2f} s to {high:.2f} s {describe(score)}",
                )
            )
            start = None
    return flags
