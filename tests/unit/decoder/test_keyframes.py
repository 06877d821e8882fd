import io
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from services.decoder.errors import DecodeError
from services.decoder.keyframes import SamplingPolicy, decode_video
from services.decoder.synthetic import write_clip


def test_one_keyframe_per_fixed_segment_at_its_middle(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", seconds=10.0, fps=10)
    decoded = decode_video(clip, SamplingPolicy(segment_seconds=4.0, short_side=64))
    assert [(s.start_s, s.end_s) for s in decoded.segments] == [(0.0, 4.0), (4.0, 8.0), (8.0, pytest.approx(10.0))]
    times = [s.keyframes[0].t for s in decoded.segments]
    assert times[0] == pytest.approx(2.0, abs=0.1)
    assert times[1] == pytest.approx(6.0, abs=0.1)
    assert times[2] == pytest.approx(9.0, abs=0.1)  # middle of the shorter last segment
    assert decoded.probe.duration_s == pytest.approx(10.0, abs=0.15)
    assert decoded.probe.frame_count == 100


def test_keyframes_are_resized_jpegs(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", seconds=2.0, size=(320, 240))
    seg = decode_video(clip, SamplingPolicy(short_side=120)).segments[0]
    with Image.open(io.BytesIO(seg.keyframes[0].jpeg)) as img:
        assert img.format == "JPEG"
        assert img.size == (160, 120)


def test_keyframe_pixels_come_from_the_video(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", seconds=1.0, size=(64, 48), seed=3)
    with av.open(str(clip)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    seg = decode_video(clip, SamplingPolicy(short_side=48)).segments[0]
    kf = np.asarray(Image.open(io.BytesIO(seg.keyframes[0].jpeg)).convert("RGB")).astype(int)
    assert np.abs(kf.mean(axis=(0, 1)) - first.mean(axis=(0, 1))).max() < 25


def test_max_segments_caps_work(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", seconds=6.0, fps=5)
    assert len(decode_video(clip, SamplingPolicy(segment_seconds=1.0, max_segments=2)).segments) == 2


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"this is not a video at all" * 100, "corrupt_video"), (b"\x00" * 4096, "corrupt_video")],
)
def test_garbage_is_corrupt(tmp_path: Path, content: bytes, reason: str) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(DecodeError) as err:
        decode_video(bad, SamplingPolicy())
    assert err.value.reason == reason


def test_too_long_is_refused(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", seconds=3.0, fps=5)
    with pytest.raises(DecodeError) as err:
        decode_video(clip, SamplingPolicy(max_duration_s=1.0))
    assert err.value.reason == "too_long"


def test_too_many_pixels_is_refused(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", seconds=1.0, size=(320, 240))
    with pytest.raises(DecodeError) as err:
        decode_video(clip, SamplingPolicy(max_pixels=320 * 200))
    assert err.value.reason == "too_many_pixels"
