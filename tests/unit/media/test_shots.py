from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.media.decode import DecodeOptions, decode_video
from services.media.segments import SegmentPolicy
from services.media.shots import ShotConfig, ShotDetector, match_boundaries
from services.media.synthetic import write_clip


def _boundaries(path: Path, shot: ShotConfig | None = None) -> list[float]:
    options = DecodeOptions(segments=SegmentPolicy(max_segment_s=1e9), shots=shot or ShotConfig())
    return [s.start_s for s in decode_video(path, options).segments[1:]]


@pytest.mark.parametrize("seed", range(4))
def test_known_cuts_and_fades_are_found(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    cuts = sorted({2.0 + 3.0 * i + float(rng.uniform(-0.5, 0.5)) for i in range(4)})
    clip = write_clip(
        tmp_path / "c.mp4",
        seconds=18.0,
        fps=24,
        size=(192, 108),
        seed=seed,
        cuts=cuts,
        fades=(15.5,),
        pan_px=int(rng.integers(0, 6)),
    )
    found = _boundaries(clip)
    _tp, fp, fn = match_boundaries(found, [*cuts, 15.5], tolerance_s=0.5)
    assert (fp, fn) == (0, 0), f"found {found}, expected {cuts} and a fade at 15.5"


def test_fast_motion_alone_is_not_a_cut(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "pan.mp4", seconds=6.0, fps=24, size=(192, 108), pan_px=12)
    assert _boundaries(clip) == []


def test_shots_shorter_than_the_minimum_merge(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", seconds=6.0, fps=24, cuts=(2.0, 2.3, 4.0))
    assert _boundaries(clip, ShotConfig(min_shot_s=0.6)) == pytest.approx([2.0, 4.0], abs=0.05)


def test_detector_on_thumbnails() -> None:
    a = np.full((3, 36, 64), 100, np.uint8)
    b = np.full((3, 36, 64), 180, np.uint8)
    detector = ShotDetector(ShotConfig(min_shot_s=0.0))
    pushes = [detector.push(i / 10, a) for i in range(5)] + [detector.push(0.5, b), detector.push(0.6, b)]
    assert pushes == [False] * 5 + [True, False]


def test_match_boundaries_counts_each_truth_once() -> None:
    assert match_boundaries([1.0, 1.1, 5.0], [1.05, 3.0], tolerance_s=0.2) == (1, 2, 1)
