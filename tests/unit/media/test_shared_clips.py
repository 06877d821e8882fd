"""Every real clip in ../shared/videos decodes: codecs and containers as users upload them."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest
from PIL import Image

from services.media.decode import DecodeOptions, decode_video
from tests.clips import shared_clips

CLIPS = shared_clips()


@pytest.mark.skipif(not CLIPS, reason="../shared/videos is not present")
@pytest.mark.parametrize("clip", CLIPS, ids=[c.name for c in CLIPS])
def test_shared_clip_decodes(clip: Path) -> None:
    decoded = decode_video(clip, DecodeOptions())
    probe = decoded.probe
    assert probe.width > 0 and probe.height > 0 and probe.duration_s > 0
    spans = [(s.start_s, s.end_s) for s in decoded.segments]
    assert spans[0][0] == 0.0 and spans[-1][1] == pytest.approx(probe.duration_s, abs=0.01)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans)), "segments must tile the video"
    for segment in decoded.segments:
        for keyframe in segment.keyframes:
            assert segment.start_s <= keyframe.t <= segment.end_s
            with Image.open(io.BytesIO(keyframe.jpeg)) as img:
                assert min(img.size) <= 256
                ratio = img.size[0] / img.size[1]
                assert ratio == pytest.approx(probe.width / probe.height, rel=0.05)
