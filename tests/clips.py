"""Test helpers that make real media files from the shared clips."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np

# beside the checkout, as CI lays it out; the variable lets a test point it elsewhere
SHARED_VIDEOS = Path(
    os.environ.get("CLIPSTREAM_TEST_SHARED_VIDEOS") or Path(__file__).resolve().parents[2] / "shared" / "videos"
)


def shared_clips() -> list[Path]:
    if not SHARED_VIDEOS.is_dir():
        return []
    return sorted(p for p in SHARED_VIDEOS.iterdir() if p.is_file() and p.suffix != ".md")


def write_excerpt(src: Path, dst: Path, start_s: float, seconds: float = 2.0) -> Path:
    """Re-encode [start_s, start_s + seconds) of `src` as a new mpeg4 file, as a user's excerpt would be."""
    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        frames: list[np.ndarray] = []
        origin = None
        for frame in inp.decode(stream):
            if frame.time is None:
                continue
            origin = frame.time if origin is None else origin
            t = frame.time - origin
            if t >= start_s + seconds:
                break
            if t >= start_s:
                frames.append(frame.to_ndarray(format="rgb24"))
    if not frames:
        raise ValueError(f"no frames in [{start_s}, {start_s + seconds}) of {src}")
    h, w = frames[0].shape[:2]
    fps = max(1, round(len(frames) / seconds))
    with av.open(str(dst), "w") as out:
        vs = out.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        for arr in frames:
            frame = av.VideoFrame.from_ndarray(arr[: vs.height, : vs.width].copy(), format="rgb24")
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
    return dst


# Words the shared clips show, labelled by hand from their keyframes (one per segment, as the text stage reads
# them). Clips not listed show no legible text; PP-OCR's readings there are stray glyphs under 0.9 confidence.
SHARED_TEXT: dict[str, list[str]] = {
    "forensics-samples-files__movie-hello.mp4": ["Hello world", "eriberto@canopus"],  # a title, a terminal
    "tupi-data__example.avi": ["http://www.maefloresta.com"],  # a watermark, top right
    "gh-inteliot__asl_again.mkv": ["MISFITS"],  # a T-shirt print (read as "MISTIS")
}
