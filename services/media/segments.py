"""Cut a stream of frames into segments and pick each segment's keyframes, holding only a few images.

While a segment is open it keeps one small candidate image every `candidate_interval_s`; when it
closes (a shot boundary, the max length, or the end) the policy picks the candidates nearest to its
target times and the rest are dropped, so memory is bounded by the max segment length, not the video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

Image = TypeVar("Image")


@dataclass(frozen=True)
class SegmentPolicy:
    mode: Literal["shots", "fixed"] = "shots"
    fixed_segment_s: float = 4.0
    max_segment_s: float = 10.0
    keyframes: Literal["middle", "every"] = "middle"
    keyframe_every_s: float = 2.0
    max_keyframes_per_segment: int = 4
    max_keyframes_per_video: int = 256
    max_segments: int = 2000
    candidate_interval_s: float = 0.5


@dataclass(frozen=True)
class ClosedSegment(Generic[Image]):
    index: int
    start_s: float
    end_s: float
    keyframes: list[tuple[float, Image]]


@dataclass
class _Open(Generic[Image]):
    start_s: float
    candidates: list[tuple[float, Image]] = field(default_factory=list)


class Segmenter(Generic[Image]):
    def __init__(self, policy: SegmentPolicy) -> None:
        self.policy = policy
        self._open: _Open[Image] | None = None
        self._closed = 0
        self._keyframes = 0

    @property
    def full(self) -> bool:
        return self._closed >= self.policy.max_segments

    def boundaries(self, t: float, shot_cut: bool) -> list[ClosedSegment[Image]]:
        """Close whatever ends before a frame at `t`; call once per frame before `wants`/`add`."""
        policy = self.policy
        current = self._open
        if current is None:
            start = math.floor(t / policy.fixed_segment_s) * policy.fixed_segment_s if policy.mode == "fixed" else 0.0
            self._open = _Open(min(start, t))
            return []
        if policy.mode == "fixed":
            window_start = math.floor(t / policy.fixed_segment_s) * policy.fixed_segment_s
            if window_start > current.start_s + 1e-9:
                return self._close(window_start)
            return []
        if shot_cut or t - current.start_s >= policy.max_segment_s:
            return self._close(t)
        return []

    def wants(self, t: float) -> bool:
        current = self._open
        assert current is not None, "call boundaries() first"
        if not current.candidates:
            return True
        return t - current.candidates[-1][0] >= self.policy.candidate_interval_s

    @property
    def candidates(self) -> list[tuple[float, Image]]:
        """The open segment's candidates, oldest first."""
        return self._open.candidates if self._open is not None else []

    def add(self, t: float, image: Image) -> None:
        assert self._open is not None
        self._open.candidates.append((t, image))

    def finish(self, end_s: float) -> list[ClosedSegment[Image]]:
        return self._close(end_s, final=True)

    def _close(self, end_s: float, final: bool = False) -> list[ClosedSegment[Image]]:
        current = self._open
        self._open = None if final else _Open(end_s)
        if current is None or not current.candidates or self.full:
            if current is not None and not current.candidates and self._open is not None:
                self._open.start_s = current.start_s  # nothing decodable in it: the next one starts earlier
            return []
        end = max(end_s, current.candidates[-1][0])
        picked = self._pick(current.start_s, end, current.candidates)
        segment = ClosedSegment(self._closed, current.start_s, end, picked)
        self._closed += 1
        self._keyframes += len(picked)
        return [segment]

    def _pick(self, start: float, end: float, candidates: list[tuple[float, Image]]) -> list[tuple[float, Image]]:
        policy = self.policy
        if policy.keyframes == "middle":
            targets = [(start + end) / 2]
        else:
            step = policy.keyframe_every_s
            count = max(1, min(policy.max_keyframes_per_segment, math.ceil((end - start) / step)))
            targets = [start + step / 2 + i * step for i in range(count)]
        budget = max(1, policy.max_keyframes_per_video - self._keyframes)
        chosen: dict[int, tuple[float, Image]] = {}
        for target in targets[:budget]:
            i = min(range(len(candidates)), key=lambda k: abs(candidates[k][0] - target))
            chosen[i] = candidates[i]
        return [chosen[i] for i in sorted(chosen)]
