"""Reciprocal rank fusion of what is seen and what is written, and the lexical test of OCR'd words."""

from __future__ import annotations

import pytest

from services.common.vectors import SegmentHit
from services.search.fusion import RRF_K, fuse, words_found


@pytest.mark.parametrize(
    ("query", "written", "share"),
    [
        ("slow motion waterfall", "SLOW MOTION WATERFALL 2026", 1.0),
        ("slow motion waterfall", "SLOW MOTIONWATERFALL2026", 1.0),  # OCR dropped the spaces
        ("Slow-Motion waterfall!", "slow motion waterfall", 1.0),
        ("slow motion waterfall", "SLOW MOTION", 2 / 3),
        ("night market", "GOLDEN HOUR HARBOUR", 0.0),
        ("", "anything", 0.0),
        ("ÉTÉ", "été à paris", 1.0),
        ("a dog lying on the floor", "tupi data example", 0.0),  # "a" and "on" are no words of it
        ("a dog on the floor", "THE FLOOR IS LAVA", 0.5),  # dog, floor: "the" is a stopword
        ("on air", "MONAIR", 0.0),  # short words only as whole words
        ("weather", "THEWEATHERCHANNEL", 1.0),
        ("the beach", "THE SHOW", 0.0),  # a stopword names nothing
        ("the beach", "BEACH", 1.0),
    ],
)
def test_words_found(query: str, written: str, share: float) -> None:
    assert words_found(query, written) == pytest.approx(share)


def _hit(video: str, segment: int, mode: str) -> SegmentHit:
    return SegmentHit(video, 0.5, {"segment_index": segment, "why": [{"mode": mode}]})


def test_fusion_sums_reciprocal_ranks_and_keeps_the_best_placed_segment_and_every_reason() -> None:
    visual = [_hit("a", 0, "visual"), _hit("b", 3, "visual"), _hit("c", 0, "visual")]
    text = [_hit("b", 1, "text"), _hit("d", 2, "text")]
    fused = fuse({"visual": visual, "text": text})
    assert [h.video_id for h in fused] == ["b", "a", "d", "c"]  # b: 1/62 + 1/61 beats a: 1/61
    b = fused[0]
    assert b.fields["segment_index"] == 1  # the text ranking placed b first, the visual one second
    assert [w["mode"] for w in b.fields["why"]] == ["visual", "text"]
    assert b.fields["fused_score"] == pytest.approx(round(1 / (RRF_K + 2) + 1 / (RRF_K + 1), 6))
    assert fuse({"visual": visual}) == [
        SegmentHit(h.video_id, h.score, {**h.fields, "fused_score": round(1 / (RRF_K + i), 6)})
        for i, h in enumerate(visual, start=1)
    ]


def test_ties_are_broken_by_rank_then_id() -> None:
    fused = fuse({"visual": [_hit("z", 0, "visual")], "text": [_hit("y", 0, "text")]})
    assert [h.video_id for h in fused] == ["y", "z"]
