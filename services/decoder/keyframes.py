"""Probe a video and sample one keyframe per fixed-length segment, decoding the stream once.

Only the frame closest to each segment's midpoint is kept (as a reference, until the segment closes),
so memory stays flat however long the video is. Timestamps are presentation times, so variable frame
rate sources get correct times.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.error
from PIL import Image

from services.decoder.errors import DecodeError


@dataclass(frozen=True)
class Probe:
    container: str
    codec: str
    width: int
    height: int
    fps: float | None
    duration_s: float
    bitrate: int | None
    has_audio: bool
    frame_count: int | None


@dataclass(frozen=True)
class SampledKeyframe:
    t: float
    jpeg: bytes


@dataclass(frozen=True)
class Segment:
    index: int
    start_s: float
    end_s: float
    keyframes: list[SampledKeyframe]


@dataclass
class SamplingPolicy:
    segment_seconds: float = 4.0
    short_side: int = 256
    jpeg_quality: int = 90
    max_segments: int = 2000
    max_duration_s: float = 4 * 3600.0
    max_pixels: int = 8192 * 8192


@dataclass
class DecodedVideo:
    probe: Probe
    segments: list[Segment] = field(default_factory=list)


def decode_video(path: Path, policy: SamplingPolicy) -> DecodedVideo:
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            return _decode(container, policy)
    except DecodeError:
        raise
    except av.error.InvalidDataError as exc:
        raise DecodeError("corrupt_video", f"not a decodable media file: {exc}") from exc
    except av.error.FFmpegError as exc:
        raise DecodeError("corrupt_video", str(exc)) from exc


def _decode(container: av.container.InputContainer, policy: SamplingPolicy) -> DecodedVideo:
    if not container.streams.video:
        raise DecodeError("no_video_stream", "the file has no video stream")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    if ctx is None or ctx.name is None:
        raise DecodeError("unsupported_codec", "no decoder for the video stream")
    if ctx.width * ctx.height > policy.max_pixels:
        raise DecodeError("too_many_pixels", f"{ctx.width}x{ctx.height} exceeds {policy.max_pixels} pixels")
    stream.thread_type = "AUTO"
    declared = _declared_duration(container, stream)
    if declared is not None and declared > policy.max_duration_s:
        raise DecodeError("too_long", f"{declared:.0f}s exceeds {policy.max_duration_s:.0f}s")

    seg = policy.segment_seconds
    segments: list[Segment] = []
    origin: float | None = None
    current = 0  # segment index awaiting its keyframe
    best: tuple[float, av.VideoFrame] | None = None  # (|t - target|, frame) of the current segment
    last_t = 0.0
    frames = 0

    def target(i: int) -> float:
        start = i * seg
        end = (i + 1) * seg
        if declared is not None and start < declared < end:
            end = declared
        return (start + end) / 2

    def close(i: int, frame: av.VideoFrame, t: float) -> None:
        segments.append(Segment(len(segments), i * seg, (i + 1) * seg, [SampledKeyframe(t, _jpeg(frame, policy))]))

    try:
        for frame in container.decode(stream):
            if frame.pts is None or frame.time is None:
                continue
            if origin is None:
                origin = float(frame.time)
            t = float(frame.time) - origin
            frames += 1
            last_t = max(last_t, t)
            if t > policy.max_duration_s:
                raise DecodeError("too_long", f"decoded past {policy.max_duration_s:.0f}s")
            index = int(t // seg)
            while index > current:  # the frame belongs to a later segment: close the ones before it
                if best is not None:
                    close(current, best[1], float(best[1].time) - origin)
                best = None
                current += 1
            distance = abs(t - target(current))
            if best is None or distance < best[0]:
                best = (distance, frame)
            if len(segments) >= policy.max_segments:
                break
    except av.error.FFmpegError as exc:
        if frames == 0:
            raise DecodeError("corrupt_video", f"no frame could be decoded: {exc}") from exc
        # a truncated tail still leaves the decoded part usable
    if best is not None and origin is not None and len(segments) < policy.max_segments:
        close(current, best[1], float(best[1].time) - origin)
    if not segments:
        raise DecodeError("corrupt_video", "the video stream holds no decodable frame")

    fps = float(stream.average_rate) if stream.average_rate else None
    frame_step = 1.0 / fps if fps else 0.0
    duration = max(declared or 0.0, last_t + frame_step)
    last = segments[-1]
    segments[-1] = Segment(last.index, last.start_s, min(last.end_s, duration), last.keyframes)
    probe = Probe(
        container=container.format.name,
        codec=ctx.name,
        width=ctx.width,
        height=ctx.height,
        fps=fps,
        duration_s=round(duration, 3),
        bitrate=container.bit_rate or None,
        has_audio=bool(container.streams.audio),
        frame_count=frames,
    )
    return DecodedVideo(probe, segments)


def _declared_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        value = float(stream.duration * stream.time_base)
        if value > 0 and math.isfinite(value):
            return value
    if container.duration is not None and container.duration > 0:
        return float(container.duration) / av.time_base
    return None


def _jpeg(frame: av.VideoFrame, policy: SamplingPolicy) -> bytes:
    w, h = frame.width, frame.height
    scale = policy.short_side / min(w, h)
    if scale < 1:
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
    image: Image.Image = frame.to_image(width=w, height=h)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=policy.jpeg_quality)
    return buf.getvalue()
