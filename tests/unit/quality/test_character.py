"""The character-consistency check on its own: each shot's main face against the reference faces, drift
measured from the video's best-matching shot, a floor, and shots without a face left alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from services.quality.checks import QcConfig, SegmentFace, SegmentVector, character_drift, main_faces, run_checks


def _v(*xs: float) -> np.ndarray:
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


REF = _v(1, 0, 0).reshape(1, -1)


def _shot(i: int, vector: np.ndarray | None) -> SegmentFace:
    return SegmentFace(i, i * 2.0, i * 2.0 + 2.0, vector)


def test_a_swapped_face_is_flagged_on_its_shot_only() -> None:
    same, other = _v(1, 0.05, 0), _v(0.9, 0.44, 0)  # cosines ~0.999 and ~0.898
    scores, flags = character_drift([_shot(0, same), _shot(1, other), _shot(2, same)], REF, 0.05, 0.5)
    assert [round(s, 3) for s in scores if s is not None] == [0.999, 0.898, 0.999]
    assert [(f.check, f.start_s, f.end_s) for f in flags] == [("character", 2.0, 4.0)]


def test_drift_is_measured_at_the_limit_from_the_best_shot() -> None:
    best = _v(1, 0, 0)
    at_limit = _v(0.95, float(np.sqrt(1 - 0.95**2)), 0)  # exactly `drop` below the best
    _, flags = character_drift([_shot(0, best), _shot(1, at_limit)], REF, 0.05 + 1e-6, 0.0)
    assert flags == []
    _, flags = character_drift([_shot(0, best), _shot(1, at_limit)], REF, 0.05 - 1e-6, 0.0)
    assert len(flags) == 1


def test_the_floor_flags_a_video_whose_every_face_is_a_stranger() -> None:
    stranger = _v(0, 1, 0)
    _, flags = character_drift([_shot(0, stranger), _shot(1, stranger)], REF, 0.05, 0.5)
    assert [(f.start_s, f.end_s) for f in flags] == [(0.0, 4.0)]


def test_shots_without_a_face_are_not_judged() -> None:
    scores, flags = character_drift([_shot(0, None), _shot(1, _v(1, 0, 0)), _shot(2, None)], REF, 0.05, 0.5)
    assert scores[0] is None and scores[2] is None and flags == []
    assert character_drift([_shot(0, None)], REF, 0.05, 0.5) == ([None], [])


def test_the_main_face_is_the_largest_and_the_check_runs_only_with_reference_faces() -> None:
    segments = [SegmentVector(i, i * 2.0, i * 2.0 + 2.0, _v(1, 1, 1)) for i in range(2)]
    rows = [
        {"segment_index": 0, "box": json.dumps([0, 0, 0.1, 0.1]), "vector": [0, 1, 0]},
        {"segment_index": 0, "box": json.dumps([0, 0, 0.5, 0.5]), "vector": [1, 0, 0]},
    ]
    faces = main_faces(segments, rows)
    assert faces[1].vector is None and faces[0].vector is not None and faces[0].vector.tolist() == [1, 0, 0]
    config = QcConfig(alignment_threshold=0.2, jump_threshold=-1.0)
    with_faces = run_checks(segments, config, references=REF, faces=faces, reference_faces=REF)
    assert "character" in with_faces.checks and with_faces.segments[0].character == pytest.approx(1.0)
    assert "character" not in run_checks(segments, config, references=REF, faces=faces).checks
