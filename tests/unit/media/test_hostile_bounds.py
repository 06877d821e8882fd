"""Hostile-input bounds at their edges: the aspect-ratio limit exactly at and one pixel past it (a test far
from the limit passes with the limit ten times looser), and FFmpeg's protocol whitelist on its own (the
format whitelist stops playlists first, so a test of playlists never sees the protocol layer)."""

from __future__ import annotations

import io
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import pytest
from PIL import Image

from services.media.decode import DecodeOptions, decode_video
from services.media.errors import DecodeError
from services.media.images import ImageLimits, fit_pixels
from services.media.settings import MediaSettings
from services.media.synthetic import write_clip
from services.search.settings import SearchSettings
from tests import media

# where the stages take their limits from: the library's defaults and the settings each deployment reads
DECODE_OPTIONS: dict[str, Callable[[], DecodeOptions]] = {
    "library": DecodeOptions,
    "decoder-settings": lambda: MediaSettings().decode_options(),
}
IMAGE_LIMITS: dict[str, Callable[[], ImageLimits]] = {
    "library": ImageLimits,
    "search-settings": lambda: SearchSettings().image_limits(),
}


def _clip(path: Path, size: tuple[int, int], sar: Fraction | None = None) -> Path:
    """Three frames of `size` pixels, stretched by `sar` on display when given."""

    def stretch(stream: av.video.stream.VideoStream) -> None:
        stream.codec_context.sample_aspect_ratio = sar

    frames = [media.quadrant_frame(*size)] * 3
    return media.write_frames(path, frames, codec="libx264", configure=stretch if sar is not None else None)


# (pixels, sample aspect ratio, displayed as): exactly 20:1, then one displayed pixel longer
AT_THE_LIMIT = [
    ((640, 32), None, (640, 32)),
    ((32, 640), None, (32, 640)),
    ((64, 32), Fraction(10, 1), (640, 32)),  # anamorphic: the limit is on the picture as shown
]
JUST_OVER = [
    ((642, 32), None),
    ((32, 642), None),
    ((64, 32), Fraction(321, 32)),  # 64 x 321/32 = 642 displayed pixels wide
]


@pytest.mark.parametrize("options", DECODE_OPTIONS.values(), ids=DECODE_OPTIONS.keys())
@pytest.mark.parametrize(("size", "sar", "shown"), AT_THE_LIMIT, ids=["wide", "tall", "stretched"])
def test_a_video_exactly_at_the_aspect_limit_is_decoded(
    tmp_path: Path,
    options: Callable[[], DecodeOptions],
    size: tuple[int, int],
    sar: Fraction | None,
    shown: tuple[int, int],
) -> None:
    assert max(shown) == options().limits.max_aspect_ratio * min(shown)  # the case is where it says it is
    decoded = decode_video(_clip(tmp_path / "at.mkv", size, sar), options())
    assert (decoded.probe.width, decoded.probe.height) == shown
    assert decoded.segments


@pytest.mark.parametrize("options", DECODE_OPTIONS.values(), ids=DECODE_OPTIONS.keys())
@pytest.mark.parametrize(("size", "sar"), JUST_OVER, ids=["wide", "tall", "stretched"])
def test_a_video_one_pixel_past_the_aspect_limit_is_refused(
    tmp_path: Path, options: Callable[[], DecodeOptions], size: tuple[int, int], sar: Fraction | None
) -> None:
    with pytest.raises(DecodeError) as err:
        decode_video(_clip(tmp_path / "over.mkv", size, sar), options())
    assert err.value.reason == "bad_aspect_ratio"


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("limits", IMAGE_LIMITS.values(), ids=IMAGE_LIMITS.keys())
@pytest.mark.parametrize(("at", "over"), [((640, 32), (641, 32)), ((32, 640), (32, 641))], ids=["wide", "tall"])
def test_a_query_image_is_held_to_the_same_aspect_limit_at_its_edge(
    limits: Callable[[], ImageLimits], at: tuple[int, int], over: tuple[int, int]
) -> None:
    assert max(at) == limits().max_aspect * min(at)
    assert fit_pixels(_png(*at), limits()).shape[:2] == (at[1], at[0])
    with pytest.raises(DecodeError) as err:
        fit_pixels(_png(*over), limits())
    assert err.value.reason == "bad_image" and "longer than" in err.value.detail


@pytest.mark.parametrize(
    "url", ["concat:{outside}", "concat:{inside}|{outside}", "subfile,,start,0,end,0,,:{outside}", "cache:{outside}"]
)
def test_a_path_that_ffmpeg_would_read_as_another_protocol_is_refused_by_the_protocol_whitelist(
    tmp_path: Path, url: str
) -> None:
    """A path reaches FFmpeg as a URL string, and FFmpeg reads `concat:`, `subfile:` or `cache:` in front of it as
    a protocol that opens other files. `open_source` hands the decoder resolved absolute paths, so this is the
    layer under it: every one of these is an allowed container (an MP4) that only the protocol whitelist
    stops, with the file it would reach outside the folder the decoder was allowed."""
    (tmp_path / "allowed").mkdir()
    inside = write_clip(tmp_path / "allowed" / "a.mp4", seconds=1.0, size=(64, 48))
    outside = write_clip(tmp_path / "secret.mp4", seconds=1.0, size=(64, 48))
    assert decode_video(Path(f"file:{outside}"), DecodeOptions()).segments  # the plain file protocol is allowed
    with pytest.raises(DecodeError) as err:
        decode_video(Path(url.format(inside=inside, outside=outside)), DecodeOptions())
    assert err.value.reason == "format_not_allowed"
