"""The QC checks on vectors with a known geometry: which segments are flagged, and over which time range."""

from __future__ import annotations

import numpy as np
import pytest

from services.quality.checks import QcConfig, SegmentVector, run_checks, unit
from services.quality.cohort import outliers

DIM = 32
CONFIG = QcConfig(alignment_threshold=0.6, jump_threshold=0.8, style_z=4.0, min_spread=0.02)


def _direction(seed: int) -> np.ndarray:
    return unit(np.random.default_rng(seed).normal(size=DIM))[0]


def _near(base: np.ndarray, noise: float, seed: int) -> np.ndarray:
    return unit(base + noise * np.random.default_rng(seed).normal(size=DIM))[0]


def _segments(vectors: list[np.ndarray], length: float = 2.0) -> list[SegmentVector]:
    return [SegmentVector(i, i * length, (i + 1) * length, v) for i, v in enumerate(vectors)]


def test_nothing_to_check_without_prompt_or_references() -> None:
    result = run_checks(_segments([_direction(1), _direction(2)]), CONFIG)
    assert result.verdict == "nothing_to_check" and not result.flags and not result.checks


def test_a_switch_to_another_scene_is_flagged_over_its_range() -> None:
    scene, other = _direction(1), _direction(2)
    video = [_near(scene, 0.05, i) for i in range(3)] + [_near(other, 0.05, 10 + i) for i in range(2)]
    result = run_checks(_segments(video), CONFIG, prompt=scene[None])
    assert result.verdict == "flagged"
    by_check = {f.check: f for f in result.flags}
    assert set(by_check) == {"prompt_alignment", "temporal"}
    assert (by_check["prompt_alignment"].start_s, by_check["prompt_alignment"].end_s) == (6.0, 10.0)
    assert (by_check["temporal"].start_s, by_check["temporal"].end_s) == (6.0, 8.0)  # the jump into the new scene
    assert [s.alignment is not None and s.alignment >= 0.6 for s in result.segments] == [True] * 3 + [False] * 2
    # the flag carries the run's worst score: its lowest alignment
    assert by_check["prompt_alignment"].score == pytest.approx(min(s.alignment or 1.0 for s in result.segments[3:]))


def test_a_consistent_aligned_video_passes() -> None:
    scene = _direction(1)
    result = run_checks(_segments([_near(scene, 0.05, i) for i in range(4)]), CONFIG, prompt=scene[None])
    assert result.verdict == "pass" and result.checks == ["prompt_alignment", "temporal"]


def test_style_deviation_is_measured_in_the_references_own_spread() -> None:
    style, other = _direction(3), _direction(4)
    references = np.stack([_near(style, 0.1, 100 + i) for i in range(4)])
    config = QcConfig(0.6, jump_threshold=-1.0)  # the style check alone
    on = run_checks(_segments([_near(style, 0.1, i) for i in range(3)]), config, references=references)
    assert on.verdict == "pass", [s.deviation for s in on.segments]
    mixed = [_near(style, 0.1, 1), _near(other, 0.1, 2), _near(style, 0.1, 3)]
    off = run_checks(_segments(mixed), config, references=references)
    (flag,) = off.flags
    assert (flag.check, flag.start_s, flag.end_s) == ("style", 2.0, 4.0)
    assert flag.score > 4.0


def test_cuts_allowed_only_checks_boundaries_inside_a_shot() -> None:
    a, b = _direction(5), _direction(6)
    segments = [SegmentVector(0, 0.0, 10.0, a), SegmentVector(1, 10.0, 13.0, b), SegmentVector(2, 13.0, 16.0, a)]
    config = QcConfig(-1.0, 0.8, cuts_allowed=True, max_segment_s=10.0)
    flags = run_checks(segments, config, prompt=a[None]).flags
    assert [(f.check, f.start_s) for f in flags] == [("temporal", 10.0)]  # 10.0 split a long shot; 13.0 is a cut
    every = run_checks(segments, QcConfig(-1.0, 0.8), prompt=a[None]).flags
    assert [f.start_s for f in every] == [10.0, 13.0]


def test_a_gap_between_segments_is_no_boundary() -> None:
    a, b = _direction(7), _direction(8)
    segments = [SegmentVector(0, 0.0, 2.0, a), SegmentVector(1, 5.0, 7.0, b)]
    assert not run_checks(segments, QcConfig(-1.0, 0.8), prompt=a[None]).flags


@pytest.mark.parametrize("size", [8, 40])
def test_cohort_outliers_are_the_members_far_from_the_rest(size: int) -> None:
    centre = _direction(9)
    members = [_near(centre, 0.2, i) for i in range(size)]
    members[3] = _near(_direction(10), 0.2, 99)
    found, median = outliers(np.stack(members))
    assert [o.position for o in found] == [3]
    assert found[0].distance > median and found[0].z > 3.5


def test_a_style_flag_carries_its_runs_largest_deviation() -> None:
    style, other = _direction(3), _direction(4)
    references = np.stack([_near(style, 0.1, 100 + i) for i in range(4)])
    mixed = [_near(style, 0.1, 1), _near(other, 0.1, 2), _near(other, 0.6, 5), _near(style, 0.1, 3)]
    result = run_checks(_segments(mixed), QcConfig(0.6, jump_threshold=-1.0), references=references)
    (flag,) = result.flags
    assert (flag.check, flag.start_s, flag.end_s) == ("style", 2.0, 6.0)
    run = [s.deviation or 0.0 for s in result.segments[1:3]]
    assert run[0] != pytest.approx(run[1]) and flag.score == pytest.approx(max(run), abs=1e-4)
