"""The decision of which segment pairs are evidence, at its limits: the model's threshold, the match bits, the
frame share, the veto, and what each mode weighs."""

from __future__ import annotations

import pytest

from services.common.fingerprints import KeyframeFingerprint
from services.duplicates.evidence import EvidenceConfig, FrameMatch, evidence, frame_matches, pair_score

FUSED = EvidenceConfig(clip_threshold=0.9, match_bits=8, min_share=0.25, veto_bits=16)  # not the default veto
CLIP = EvidenceConfig(clip_threshold=0.9, mode="clip")
PRINTS = EvidenceConfig(clip_threshold=0.9, mode="fingerprints", match_bits=8, min_share=0.25)


def test_the_model_alone_counts_pairs_at_its_threshold_and_ignores_the_hashes() -> None:
    assert pair_score(0.9, None, CLIP) == 0.9
    assert pair_score(0.8999, None, CLIP) is None
    assert pair_score(0.5, FrameMatch(0, 1.0), CLIP) is None
    assert pair_score(0.95, FrameMatch(40, 0.0), CLIP) == 0.95


def test_the_hashes_alone_count_frames_at_the_match_bits_and_share() -> None:
    assert pair_score(None, FrameMatch(8, 0.25), PRINTS) == pytest.approx(1 - 8 / 64)
    assert pair_score(None, FrameMatch(9, 1.0), PRINTS) is None
    assert pair_score(None, FrameMatch(0, 0.24), PRINTS) is None
    assert pair_score(0.99, None, PRINTS) is None  # the model's cosine alone is no evidence here


def test_fused_hashes_that_match_count_whatever_the_model_says() -> None:
    assert pair_score(0.1, FrameMatch(8, 0.5), FUSED) == pytest.approx(1 - 8 / 64)
    assert pair_score(None, FrameMatch(2, 0.5), FUSED) == pytest.approx(1 - 2 / 64)
    assert pair_score(0.97, FrameMatch(2, 0.5), FUSED) == 0.97  # the larger score


def test_fused_the_model_counts_unless_the_pictures_are_further_apart_than_the_veto() -> None:
    assert pair_score(0.92, FrameMatch(16, 0.0), FUSED) == 0.92
    assert pair_score(0.92, FrameMatch(17, 0.0), FUSED) is None
    assert pair_score(0.92, None, FUSED) == 0.92  # no fingerprints (flat frames, older rows): the model decides
    assert pair_score(0.89, FrameMatch(12, 0.0), FUSED) is None


def _fp(n: int) -> KeyframeFingerprint:
    """Fingerprints `n` bits from zero in each hash: far from each other when their bits do not overlap."""
    value = (1 << n) - 1
    return KeyframeFingerprint((value, value, value, value))


def test_frame_matches_pair_each_segment_with_each_of_the_others() -> None:
    far = KeyframeFingerprint((0xFFFF_FFFF_0000_0000,) * 4)
    this = {0: [_fp(0), _fp(3)], 1: [far], 2: []}
    other = {5: [_fp(2)], 6: [far, _fp(60)], 7: []}
    found = frame_matches(this, other, match_bits=8)
    assert set(found) == {(0, 5), (0, 6), (1, 5), (1, 6)}  # segments without fingerprints are no pair
    assert found[(0, 5)] == FrameMatch(1, 1.0)  # _fp(3) vs _fp(2): 1 bit; both frames of 0 within 8
    assert found[(1, 6)] == FrameMatch(0, 1.0)
    assert found[(1, 5)].best_bits == 34 and found[(1, 5)].share == 0.0
    assert found[(0, 6)] == FrameMatch(32, 0.0)


def test_evidence_joins_the_models_pairs_and_the_hashes_pairs() -> None:
    this = {0: [_fp(0)], 1: [_fp(0)]}
    other = {0: [_fp(1)], 1: [KeyframeFingerprint((0xFFFF_FFFF_FFFF_0000,) * 4)]}
    cosines = {(0, 1): 0.95, (1, 1): 0.5}
    pairs = {(p.this, p.other) for p in evidence(cosines, this, other, FUSED)}
    assert pairs == {(0, 0), (1, 0)}  # the hashes' pairs; the model's (0, 1) vetoed: 48 bits apart
    assert {(p.this, p.other) for p in evidence(cosines, this, other, CLIP)} == {(0, 1)}


def test_frame_matches_keeps_far_pairs_only_when_asked() -> None:
    far = KeyframeFingerprint((0xFFFF_FFFF_0000_0000,) * 4)
    this, other = {0: [_fp(0)], 1: [far]}, {5: [_fp(2)], 6: [far]}
    near = frame_matches(this, other, match_bits=8, within_bits=8)
    assert set(near) == {(0, 5), (1, 6)}  # the far pairs are not built
    asked = frame_matches(this, other, match_bits=8, within_bits=8, keys=[(0, 6), (9, 9)])
    assert set(asked) == {(0, 5), (1, 6), (0, 6)} and asked[(0, 6)].best_bits == 32
