"""Content-based shot boundary detection on tiny YUV thumbnails, one frame at a time.

A hard cut is a frame whose mean YUV change from the previous frame is both large in absolute terms
(`threshold`) and large relative to the recent motion (`adaptive_ratio` x the median of the last few
scores), which keeps fast camera motion from reading as a cut where a fixed threshold (PySceneDetect's
ContentDetector) fires. A fade through black is a run of dark frames (dark on average and nearly
everywhere); its boundary is the first frame after the run. Cuts closer than `min_shot_s` to the previous
boundary are dropped, which merges very short shots into their neighbour.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Thumb = npt.NDArray[np.uint8]  # (3, h, w) planar YUV 4:4:4


@dataclass(frozen=True)
class ShotConfig:
    threshold: float = 18.0
    adaptive_ratio: float = 2.0
    window: int = 8
    min_shot_s: float = 0.6
    dark_luma: float = 24.0
    dark_bright_share: float = 0.02  # a black frame has at most this share of pixels brighter than 2x dark_luma


def _score(previous: npt.NDArray[np.int16], current: npt.NDArray[np.int16]) -> float:
    """Mean absolute change, luma weighted twice as much as each chroma plane (0..255).

    Sums, not `mean`: numpy's mean is Python code around the reduction, and this runs on every frame."""
    sums = np.add.reduce(np.abs(current - previous).reshape(3, -1), axis=1, dtype=np.int64)
    return float(2 * sums[0] + sums[1] + sums[2]) / (4 * current[0].size)


class ShotDetector:
    """Feed frames in presentation order; `push` says whether a new shot starts at this frame."""

    def __init__(self, config: ShotConfig) -> None:
        self.config = config
        self._previous: npt.NDArray[np.int16] | None = None
        self._recent: deque[float] = deque(maxlen=config.window)
        self._last_boundary = 0.0
        self._in_dark = False
        self._seen_light = False

    def push(self, t: float, thumb: Thumb) -> bool:
        config = self.config
        luma = thumb[0]
        # a fade's black is dark everywhere: a bright object on a dark background (a planet on a starfield)
        # is not black, however low the mean (measured: such a clip read as three fades)
        dark = int(np.add.reduce(luma, axis=None, dtype=np.int64)) < config.dark_luma * luma.size and (
            np.count_nonzero(luma > 2 * config.dark_luma) <= config.dark_bright_share * luma.size
        )
        current = thumb.astype(np.int16)
        previous, self._previous = self._previous, current
        if previous is None:
            self._in_dark = dark
            self._seen_light = not dark
            return False
        score = _score(previous, current)
        was_dark, self._in_dark = self._in_dark, dark
        if dark:
            self._recent.clear()  # motion statistics do not carry across a fade
            return False
        if was_dark:
            # end of a fade (or of a black run): a new shot if there was picture before it
            cut = self._seen_light
            self._seen_light = True
            return self._accept(t, cut)
        self._seen_light = True
        baseline = sorted(self._recent)[len(self._recent) // 2] if self._recent else 0.0
        self._recent.append(score)
        cut = score >= config.threshold and score >= config.adaptive_ratio * baseline
        return self._accept(t, cut)

    def _accept(self, t: float, cut: bool) -> bool:
        if not cut or t - self._last_boundary < self.config.min_shot_s:
            return False
        self._last_boundary = t
        return True


def match_boundaries(found: list[float], truth: list[float], tolerance_s: float) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives), each true boundary matched at most once."""
    unmatched = sorted(truth)
    tp = 0
    for t in sorted(found):
        near = [u for u in unmatched if abs(u - t) <= tolerance_s]
        if near:
            unmatched.remove(min(near, key=lambda u: abs(u - t)))
            tp += 1
    return tp, len(found) - tp, len(unmatched)
