"""The near-duplicate decision on its own: temporal evidence, blank and short segments, coverage."""

import base64
import io
import math
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from services.duplicates.blank import detail, informative
from services.duplicates.match import MatchConfig, Pair, Segment, best_chain, bookends_only, judge

CONFIG = MatchConfig()


def _video(count: int, length_s: float = 3.0, blank: tuple[int, ...] = ()) -> list[Segment]:
    return [Segment(i, i * length_s, (i + 1) * length_s, i not in blank) for i in range(count)]


def _diagonal(n: int, offset: int = 0, score: float = 0.97) -> list[Pair]:
    return [Pair(i + offset, i, score) for i in range(n)]


def test_an_ordered_run_over_both_videos_is_a_duplicate_with_its_ranges() -> None:
    verdict = judge(_video(3), _video(3), _diagonal(3), CONFIG)
    assert verdict is not None and verdict.kind == "duplicate" and verdict.segments == 3
    assert verdict.this_range == (0.0, 9.0) and verdict.other_range == (0.0, 9.0)
    assert verdict.score == pytest.approx(0.97)


def test_one_similar_segment_is_not_evidence() -> None:
    assert judge(_video(5), _video(5), [Pair(2, 2, 0.99)], CONFIG) is None


def test_matches_out_of_order_are_not_a_run() -> None:
    shuffled = [Pair(0, 2, 0.97), Pair(1, 1, 0.97), Pair(2, 0, 0.97)]
    assert len(best_chain(shuffled, {s.index: s for s in _video(3)}, {s.index: s for s in _video(3)})) == 1
    assert judge(_video(3), _video(3), shuffled, CONFIG) is None


def test_blank_segments_are_no_evidence_even_when_identical() -> None:
    this, other = _video(3, 6.0, blank=(0, 1)), _video(3, 6.0, blank=(0, 1))  # a long shared blank intro
    assert judge(this, other, [Pair(0, 0, 1.0), Pair(1, 1, 1.0)], CONFIG) is None
    # counted if not blank (12 s shared: longer than an intro)
    assert judge(_video(3, 6.0), _video(3, 6.0), [Pair(0, 0, 1.0), Pair(1, 1, 1.0)], CONFIG) is not None


def test_very_short_segments_take_no_part() -> None:
    flashes = [Segment(i, i * 0.5, (i + 1) * 0.5) for i in range(6)]
    film = [*flashes, Segment(6, 3.0, 12.0), Segment(7, 12.0, 21.0)]  # flashes, then two long shots
    other = [*flashes, Segment(6, 3.0, 12.0), Segment(7, 12.0, 30.0)]
    assert judge(film, other, _diagonal(6, score=0.99), CONFIG) is None  # the flashes matched, nothing else
    assert judge(film, other, [Pair(6, 6, 0.99), Pair(7, 7, 0.99)], CONFIG) is not None


def test_a_short_video_matched_end_to_end_is_a_duplicate() -> None:
    short = [Segment(0, 0.0, 0.6)]
    assert (v := judge(short, short, [Pair(0, 0, 0.99)], CONFIG)) is not None and v.kind == "duplicate"
    longer = [Segment(0, 0.0, 0.6), Segment(1, 0.6, 1.2)]
    assert judge(short, longer, [Pair(0, 0, 0.99)], CONFIG) is None  # half of the other: not shown to be a copy


def test_a_compilation_contains_its_source_at_the_matched_time() -> None:
    verdict = judge(_video(9), _video(3), _diagonal(3, offset=3), CONFIG)
    assert verdict is not None and verdict.kind == "contains"
    assert verdict.this_range == (9.0, 18.0) and verdict.other_range == (0.0, 9.0)
    back = judge(_video(3), _video(9), [Pair(p.other, p.this, p.score) for p in _diagonal(3, offset=3)], CONFIG)
    assert back is not None and back.kind == "contained_in"


def test_a_trimmed_copy_is_still_a_duplicate() -> None:
    verdict = judge(_video(3), _video(4), [Pair(i, i + 1, 0.95) for i in range(3)], CONFIG)
    assert verdict is not None and verdict.kind == "duplicate" and verdict.other_coverage == pytest.approx(0.75)


def test_two_one_shot_videos_can_be_duplicates() -> None:
    assert (v := judge(_video(1), _video(1), [Pair(0, 0, 0.95)], CONFIG)) is not None and v.kind == "duplicate"


def _jpeg(pixels: np.ndarray) -> str:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return base64.b64encode(out.getvalue()).decode()


def test_blank_thumbnails_are_told_from_content() -> None:
    rng = np.random.default_rng(0)
    black, grey = np.zeros((90, 160, 3), np.uint8), np.full((90, 160, 3), 170, np.uint8)
    content = rng.integers(0, 255, (9, 16, 3), dtype=np.uint8).repeat(10, 0).repeat(10, 1)
    assert detail(_jpeg(black)) < 2 and detail(_jpeg(grey)) < 2 and detail(_jpeg(content)) > 30
    assert not informative(_jpeg(black), 10.0) and informative(_jpeg(content), 10.0)
    assert informative("", 10.0)  # no thumbnail: cannot be judged blank
    assert detail("not base64 jpeg") == 0.0


def test_a_lone_pair_of_very_different_lengths_is_not_a_run() -> None:
    one_long_shot = [Segment(0, 0.0, 9.0)]  # a video whose cuts were not found: one 9 s segment
    assert judge(one_long_shot, _video(3), [Pair(0, 1, 0.99)], CONFIG) is None
    trimmed = [Segment(0, 0.0, 6.0)]
    assert (v := judge(trimmed, [Segment(0, 0.0, 9.0)], [Pair(0, 0, 0.99)], CONFIG)) is not None
    assert v.kind == "duplicate"


def _clip(*shots_s: float) -> list[Segment]:
    """Consecutive shots of the given lengths."""
    ends = np.cumsum([0.0, *shots_s])
    return [Segment(i, float(ends[i]), float(ends[i + 1])) for i in range(len(shots_s))]


def _pairs(*indices: int) -> list[Pair]:
    return [Pair(i, i, 0.99) for i in indices]


LOGO_CLIP = _clip(1.5, 1.5, 2.0)  # a two-shot 3-s logo intro (60 %), then 2 s of its own


def test_two_clips_sharing_only_a_logo_intro_are_not_duplicates() -> None:
    """The issue's case: the intro alone covers 60 % of each clip, as much as a duplicate needs."""
    assert judge(LOGO_CLIP, LOGO_CLIP, _pairs(0, 1), CONFIG) is None
    # the same clips with their content matched too: a copy
    assert (v := judge(LOGO_CLIP, LOGO_CLIP, _pairs(0, 1, 2), CONFIG)) is not None and v.kind == "duplicate"


def test_a_shared_outro_or_intro_and_outro_is_not_a_duplicate() -> None:
    outro = _clip(2.0, 1.5, 1.5)
    assert judge(outro, outro, _pairs(1, 2), CONFIG) is None
    framed = _clip(1.5, 2.0, 1.5)  # an intro and an outro card around 2 s of content
    assert judge(framed, framed, _pairs(0, 2), CONFIG) is None


def test_a_shared_opening_longer_than_an_intro_is_evidence() -> None:
    """At `bookend_s` the 3-s opening is an intro; just under it, the opening is taken as copied content."""
    assert judge(LOGO_CLIP, LOGO_CLIP, _pairs(0, 1), replace(CONFIG, bookend_s=3.0)) is None
    longer = judge(LOGO_CLIP, LOGO_CLIP, _pairs(0, 1), replace(CONFIG, bookend_s=math.nextafter(3.0, 0.0)))
    assert longer is not None and longer.kind == "duplicate"


def test_a_match_beyond_the_shared_head_is_evidence() -> None:
    clip = _clip(1.5, 1.5, 1.0, 3.0, 1.0)
    assert not bookends_only(_pairs(0, 1, 3), {s.index: s for s in clip}, {s.index: s for s in clip}, 10.0)
    verdict = judge(clip, clip, _pairs(0, 1, 3), CONFIG)  # 6 of 8 s matched, the 3-s shot in the middle too
    assert verdict is not None and verdict.kind == "duplicate"


def test_a_side_matched_in_full_is_a_copy_not_an_intro() -> None:
    """Only leftovers on *both* sides make a shared intro: a clip cut from the other's start is its copy."""
    longer = _clip(1.5, 1.5, 2.0, 1.0)
    verdict = judge(LOGO_CLIP, longer, _pairs(0, 1, 2), CONFIG)
    assert verdict is not None and verdict.kind == "duplicate" and verdict.this_coverage == 1.0
