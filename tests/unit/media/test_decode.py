"""The decoder on real files: segments, timestamps, display geometry, and every class of bad input."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from services.media.decode import DecodeLimits, DecodeOptions, decode_video
from services.media.errors import DecodeError
from services.media.pictures import jpeg, picture
from services.media.segments import SegmentPolicy
from services.media.sources import SourcePolicy, open_source
from services.media.synthetic import write_clip
from tests import media


def _still(path: Path) -> Path:
    Image.new("RGB", (64, 64), (200, 30, 30)).save(path)
    return path


def _image(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def test_segments_follow_shots_with_middle_keyframes(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", seconds=9.0, fps=10, size=(160, 120), cuts=(3.0, 6.0))
    decoded = decode_video(clip, DecodeOptions())
    assert [(s.start_s, s.end_s) for s in decoded.segments] == [(0.0, 3.0), (3.0, 6.0), (6.0, pytest.approx(9.0))]
    assert [s.keyframes[0].t for s in decoded.segments] == pytest.approx([1.5, 4.5, 7.5], abs=0.26)
    assert decoded.probe.frame_count == 90
    assert decoded.probe.duration_s == pytest.approx(9.0, abs=0.01)


def test_long_shots_are_split_and_every_k_seconds_policy_is_capped(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", seconds=12.0, fps=10)
    policy = SegmentPolicy(max_segment_s=5.0, keyframes="every", keyframe_every_s=1.0, max_keyframes_per_segment=3)
    segments = decode_video(clip, DecodeOptions(segments=policy)).segments
    assert [s.start_s for s in segments] == [0.0, 5.0, 10.0]
    assert [len(s.keyframes) for s in segments] == [3, 3, 2]
    assert [k.t for k in segments[0].keyframes] == pytest.approx([0.5, 1.5, 2.5], abs=0.16)  # candidates every 0.25 s


def test_keyframes_only_decodes_intra_frames(tmp_path: Path) -> None:
    texture = media.quadrant_frame(64, 48)
    clip = media.write_frames(
        tmp_path / "gop.mp4",
        [np.roll(texture, i, axis=1) for i in range(30)],
        rate=10,
        codec="libx264",
        configure=lambda s: setattr(s, "options", {"g": "10", "keyint_min": "10", "sc_threshold": "0", "bf": "2"}),
    )
    options = DecodeOptions(segments=SegmentPolicy(mode="fixed", fixed_segment_s=1.0), keyframes_only=True)
    decoded = decode_video(clip, options)
    assert decoded.frames_decoded == 3
    assert [k.t for s in decoded.segments for k in s.keyframes] == pytest.approx([0.0, 1.0, 2.0])
    assert decoded.segments[-1].end_s == pytest.approx(3.0)


def _blocky_h264(path: Path) -> Path:
    """A long-GOP, low-bitrate H.264 clip of moving noise: its decode leans on the in-loop deblocking filter."""
    rng = np.random.default_rng(5)
    texture = np.kron(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))
    options = {"g": "60", "bf": "0", "crf": "38", "sc_threshold": "0"}
    return media.write_frames(
        path,
        [np.roll(texture, 3 * i, axis=1) for i in range(60)],
        rate=10,
        codec="libx264",
        configure=lambda s: setattr(s, "options", options),
    )


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(float) - b.astype(float)) ** 2).mean())
    return 99.0 if mse == 0 else 10 * float(np.log10(255**2 / mse))


def test_keyframe_pictures_are_exact_and_skipping_deblocking_keeps_the_shots(tmp_path: Path) -> None:
    clip = _blocky_h264(tmp_path / "blocky.mp4")
    policy = SegmentPolicy(keyframes="every", keyframe_every_s=1.0, max_keyframes_per_segment=8)
    exact = decode_video(clip, DecodeOptions(segments=policy, skip_deblocking=False))
    with av.open(str(clip)) as container:  # the same pictures out of a plain full decode
        frames = {round(float(f.time), 3): f for f in container.decode(video=0)}
        for keyframe in (k for s in exact.segments for k in s.keyframes):
            assert keyframe.jpeg == jpeg(picture(frames[keyframe.t], None, 256), 90)

    fast = decode_video(clip, DecodeOptions(segments=policy))  # the default
    assert [(s.start_s, s.end_s) for s in fast.segments] == [(s.start_s, s.end_s) for s in exact.segments]
    pairs = [
        (a, b)
        for x, y in zip(exact.segments, fast.segments, strict=True)
        for a, b in zip(x.keyframes, y.keyframes, strict=True)
    ]
    assert [a.t for a, _ in pairs] == [b.t for _, b in pairs] and len(pairs) >= 5
    # every picture after the intra frame is predicted from unfiltered references: it differs, and the error
    # grows along the GOP (this clip is a worst case: noise at a low bitrate)
    scores = [_psnr(_image(a.jpeg), _image(b.jpeg)) for a, b in pairs]
    assert all(score < 99.0 for score in scores) and min(scores) > 24.0, scores


def test_candidates_past_the_held_bytes_budget_become_the_same_pictures_at_once(tmp_path: Path) -> None:
    clip = _blocky_h264(tmp_path / "blocky.mp4")
    policy = SegmentPolicy(keyframes="every", keyframe_every_s=1.0, max_keyframes_per_segment=8)
    held = decode_video(clip, DecodeOptions(segments=policy))
    converted = decode_video(clip, DecodeOptions(segments=policy, limits=DecodeLimits(max_held_bytes=0)))
    keyframes = [[(k.t, k.jpeg) for k in s.keyframes] for s in held.segments]
    assert keyframes == [[(k.t, k.jpeg) for k in s.keyframes] for s in converted.segments]
    assert sum(map(len, keyframes)) >= 5


def test_variable_frame_rate_times_are_presentation_times(tmp_path: Path) -> None:
    pts = [0, 100, 200, 1500, 1600, 4000, 4100]  # ms, with long gaps
    frames = [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(len(pts))]
    clip = media.write_frames(tmp_path / "vfr.mkv", frames, pts=pts)
    options = DecodeOptions(segments=SegmentPolicy(mode="fixed", fixed_segment_s=1.0))
    decoded = decode_video(clip, options)
    assert [k.t for s in decoded.segments for k in s.keyframes] == pytest.approx([0.0, 1.5, 4.0], abs=0.002)


def test_rotation_metadata_is_applied(tmp_path: Path) -> None:
    clip = media.write_frames(
        tmp_path / "rot.mp4",
        [media.quadrant_frame(160, 96)] * 5,
        codec="libx264",
        configure=lambda s: s.set_display_rotation(90),
    )
    decoded = decode_video(clip, DecodeOptions())
    assert (decoded.probe.width, decoded.probe.height, decoded.probe.rotation) == (96, 160, 270)
    img = _image(decoded.segments[0].keyframes[0].jpeg)
    assert img.shape[:2] == (160, 96)
    # turned a quarter counter-clockwise for display: the red top-left quadrant is now bottom-left
    assert img[-10, 10, 0] > 150 and img[10, 10, 0] < 80


def test_non_square_pixels_are_shown_at_display_aspect(tmp_path: Path) -> None:
    def anamorphic(stream: object) -> None:
        stream.codec_context.sample_aspect_ratio = __import__("fractions").Fraction(2, 1)  # type: ignore[attr-defined]

    clip = media.write_frames(tmp_path / "sar.mkv", [media.quadrant_frame(100, 100)] * 3, configure=anamorphic)
    decoded = decode_video(clip, DecodeOptions(short_side=100))
    assert (decoded.probe.width, decoded.probe.height) == (200, 100)
    assert _image(decoded.segments[0].keyframes[0].jpeg).shape[:2] == (100, 200)


def test_odd_sizes_and_ten_bit_sources(tmp_path: Path) -> None:
    frames = [media.quadrant_frame(161, 97)] * 3
    clip = media.write_frames(
        tmp_path / "10bit.mkv", [f[:96, :160] for f in frames], codec="libx264", pix_fmt="yuv420p10le"
    )
    decoded = decode_video(clip, DecodeOptions())
    assert decoded.probe.pixel_format == "yuv420p10le"
    img = _image(decoded.segments[0].keyframes[0].jpeg)
    assert img[10, 10, 0] > 150 and img[-10, -10, 2] > 150
    odd = write_clip(tmp_path / "odd.mkv", seconds=1.0, size=(161, 97), codec="ffv1", pix_fmt="yuv444p")
    assert decode_video(odd, DecodeOptions(short_side=97)).probe.width == 161


def test_interlaced_frames_are_deinterlaced(tmp_path: Path) -> None:
    def interlace(stream: object) -> None:
        flags = __import__("av").codec.context.Flags
        stream.codec_context.flags |= flags.interlaced_dct | flags.interlaced_me  # type: ignore[attr-defined]

    combed = media.quadrant_frame(128, 96)
    combed[1::2] = 0  # odd field black: a woven frame would show stripes
    clip = media.write_frames(tmp_path / "i.mpg", [combed] * 4, codec="mpeg2video", configure=interlace)
    decoded = decode_video(clip, DecodeOptions(short_side=96))
    assert decoded.probe.interlaced
    img = _image(decoded.segments[0].keyframes[0].jpeg).astype(int)
    row_jumps = np.abs(np.diff(img[:40, 80:, 2], axis=0)).mean()
    assert row_jumps < 20, "keyframe still shows field combing"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: media.write_corrupt(d / "c.avi", write_clip(d / "good.avi", seconds=2.0)), "corrupt_video"),
        (lambda d: media.write_truncated(d / "t.mkv", d), "truncated_video"),
        (lambda d: media.write_text(d / "notes.mp4"), "not_a_video"),
        (lambda d: _still(d / "still.png"), "not_a_video"),
        (lambda d: media.write_audio_only(d / "a.m4a"), "no_video_stream"),
        (lambda d: media.write_unsupported_codec(d / "u.avi", d), "unsupported_codec"),
    ],
    ids=["corrupt", "truncated", "text", "still-image", "audio-only", "unknown-codec"],
)
def test_bad_input_has_a_precise_reason(tmp_path: Path, make: object, reason: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(DecodeError) as err:
        decode_video(path, DecodeOptions())
    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        (DecodeLimits(max_duration_s=2.0), "too_long"),
        (DecodeLimits(max_pixels=160 * 100), "too_many_pixels"),
        (DecodeLimits(time_budget_s=1e-6), "decode_timeout"),
    ],
)
def test_limits(tmp_path: Path, limits: DecodeLimits, reason: str) -> None:
    clip = write_clip(tmp_path / "c.mp4", seconds=4.0, fps=10, size=(160, 120))
    with pytest.raises(DecodeError) as err:
        decode_video(clip, DecodeOptions(limits=limits))
    assert err.value.reason == reason


@pytest.mark.parametrize("suffix", [".m3u8", ".m3u"])
def test_a_playlist_cannot_reach_a_file_outside_the_allowed_root(tmp_path: Path, suffix: str) -> None:
    (tmp_path / "allowed").mkdir()
    secret = write_clip(tmp_path / "secret.mp4", seconds=1.0)
    playlist = media.write_playlist(tmp_path / "allowed" / f"p{suffix}", secret)
    policy = SourcePolicy(allowed_roots=[tmp_path / "allowed"])
    with pytest.raises(DecodeError) as err, open_source(playlist.as_uri(), policy) as source:
        decode_video(source, DecodeOptions())
    assert err.value.reason == "format_not_allowed"
    with pytest.raises(DecodeError) as err, playlist.open("rb") as stream:  # a remote reader gets the same
        decode_video(stream, DecodeOptions())
    assert err.value.reason == "format_not_allowed"


@pytest.mark.parametrize(("size", "sar"), [((640, 360), Fraction(200, 1)), ((64, 512), Fraction(1, 64))])
def test_extreme_sample_aspect_ratios_are_refused_before_decoding(
    tmp_path: Path, size: tuple[int, int], sar: Fraction
) -> None:
    clip = media.write_sample_aspect(tmp_path / "sar.mkv", size, sar)
    with pytest.raises(DecodeError) as err:
        decode_video(clip, DecodeOptions())
    assert err.value.reason == "bad_aspect_ratio"
