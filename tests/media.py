"""Real media files made by the tests: awkward-but-valid videos and every class of bad input."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from services.common.fingerprints import KeyframeFingerprint
from services.media.synthetic import write_clip


def write_frames(
    path: Path,
    frames: list[np.ndarray],
    codec: str = "mpeg4",
    pix_fmt: str = "yuv420p",
    rate: int = 10,
    pts: list[int] | None = None,
    configure: Callable[[av.video.stream.VideoStream], None] | None = None,
) -> Path:
    """Encode RGB frames; `pts` (in 1/1000 s) makes the frame rate variable."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if pts is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if configure is not None:
            configure(stream)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def quadrant_frame(w: int, h: int) -> np.ndarray:
    """Red top-left quadrant on blue: where red ends up tells how a picture was rotated."""
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[:, :, 2] = 200
    img[: h // 2, : w // 2] = (220, 20, 20)
    return img


# --- bad inputs -------------------------------------------------------------------------------------


def write_corrupt(path: Path, good: Path) -> Path:
    """A real container header followed by noise: it opens, but no frame decodes."""
    head = good.read_bytes()[:2048]
    noise = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    path.write_bytes(head + noise)
    return path


def write_truncated(path: Path, tmp: Path) -> Path:
    """The first 40% of a Matroska file: the header still declares the full duration."""
    whole = write_clip(tmp / "whole.mkv", seconds=10.0, fps=10, codec="mpeg4")
    data = whole.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.4)])
    return path


def write_text(path: Path) -> Path:
    path.write_text("name,value\n" + "row,1\n" * 2000)
    return path


def write_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        samples = (np.sin(np.linspace(0, 400 * np.pi, 16000)) * 0.3).astype(np.float32)[None, :]
        for start in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(samples[:, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_unsupported_codec(path: Path, tmp: Path) -> Path:
    """An AVI whose video FourCC names no codec FFmpeg knows."""
    avi = write_clip(tmp / "ok.avi", seconds=1.0, codec="mpeg4").read_bytes()
    tag = b"FMP4"
    assert tag in avi, "PyAV's mpeg4 AVI no longer uses the FMP4 tag"
    path.write_bytes(avi.replace(tag, b"QQ9Z"))
    return path


def write_many_pixels(path: Path, size: tuple[int, int] = (2048, 1280)) -> Path:
    return write_clip(path, seconds=0.3, fps=10, size=size)


def write_long(path: Path, seconds: float) -> Path:
    return write_clip(path, seconds=seconds, fps=1, size=(64, 48))


def write_large(path: Path, size: int) -> Path:
    """A sparse file: large on paper, free on disk."""
    with path.open("wb") as f:
        f.truncate(size)
    return path


def write_playlist(path: Path, target: Path) -> Path:
    """An HLS playlist whose only entry is `target` (outside whatever folder the playlist sits in)."""
    path.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{target.as_uri()}\n#EXT-X-ENDLIST\n")
    return path


def write_sample_aspect(path: Path, size: tuple[int, int], sar: Fraction) -> Path:
    """Pixels of `size` that a player stretches by `sar`: 640x360 at 200:1 displays 128000 pixels wide."""

    def stretch(stream: av.video.stream.VideoStream) -> None:
        stream.codec_context.sample_aspect_ratio = sar

    return write_frames(path, [quadrant_frame(*size)] * 3, codec="libx264", configure=stretch)


def random_fingerprint(rng: np.random.Generator) -> KeyframeFingerprint:
    """A fingerprint of four random 64-bit hashes: about 32 bits from any other."""
    a, b, c, d = (int(x) for x in rng.integers(0, 2**64, 4, dtype=np.uint64))
    return KeyframeFingerprint((a, b, c, d))
