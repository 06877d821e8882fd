from __future__ import annotations

from services.media.segments import ClosedSegment, Segmenter, SegmentPolicy


def _run(policy: SegmentPolicy, times: list[float], cuts: set[float], end: float) -> list[ClosedSegment[float]]:
    seg: Segmenter[float] = Segmenter(policy)
    out: list[ClosedSegment[float]] = []
    for t in times:
        out += seg.boundaries(t, t in cuts)
        if seg.full:
            break
        if seg.wants(t):
            seg.add(t, t)
    return out + seg.finish(end)


TIMES = [i / 10 for i in range(100)]  # 10 s at 10 fps


def test_shot_cuts_close_segments_and_middle_keyframe_is_nearest_candidate() -> None:
    out = _run(SegmentPolicy(candidate_interval_s=0.25), TIMES, {3.0, 7.0}, 10.0)
    assert [(s.start_s, s.end_s) for s in out] == [(0.0, 3.0), (3.0, 7.0), (7.0, 10.0)]
    assert [s.keyframes[0][0] for s in out] == [1.5, 5.1, 8.5]  # candidates at 3.0, 3.3, ... 4.8, 5.1


def test_candidates_are_thinned_to_the_interval() -> None:
    seg: Segmenter[float] = Segmenter(SegmentPolicy(candidate_interval_s=0.5))
    kept = []
    for t in TIMES[:20]:
        seg.boundaries(t, False)
        if seg.wants(t):
            seg.add(t, t)
            kept.append(t)
    assert kept == [0.0, 0.5, 1.0, 1.5]


def test_fixed_windows_skip_empty_ones() -> None:
    out = _run(SegmentPolicy(mode="fixed", fixed_segment_s=2.0), [0.0, 0.5, 6.2, 6.4], set(), 7.0)
    assert [(s.start_s, s.end_s) for s in out] == [(0.0, 6.0), (6.0, 7.0)]


def test_max_segments_and_keyframe_budget() -> None:
    policy = SegmentPolicy(
        max_segment_s=1.0,
        max_segments=3,
        keyframes="every",
        keyframe_every_s=0.25,
        max_keyframes_per_video=5,
        candidate_interval_s=0.25,
    )
    out = _run(policy, TIMES, set(), 10.0)
    assert len(out) == 3
    assert [len(s.keyframes) for s in out] == [4, 1, 1]  # budget spent, but every segment keeps one


def test_held_candidates_are_bounded_by_the_max_segment_length() -> None:
    """A long video never holds more than one segment's worth of candidate pictures."""
    policy = SegmentPolicy(max_segment_s=10.0, candidate_interval_s=0.25)
    seg: Segmenter[float] = Segmenter(policy)
    held = 0
    for i in range(10 * 60 * 25):  # 10 minutes at 25 fps, no cuts
        t = i / 25
        seg.boundaries(t, False)
        if seg.wants(t):
            seg.add(t, t)
        held = max(held, len(seg._open.candidates) if seg._open else 0)
    assert held <= 10.0 / 0.25 + 1
