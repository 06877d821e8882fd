"""Technical metadata of an opened container, read from headers before any frame is decoded."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import av


@dataclass(frozen=True)
class Probe:
    container: str
    codec: str
    profile: str | None
    pixel_format: str | None
    width: int  # as displayed: after sample aspect ratio and rotation
    height: int
    rotation: int
    sample_aspect_ratio: str | None
    fps: float | None
    duration_s: float
    bitrate: int | None
    has_audio: bool
    frame_count: int | None
    interlaced: bool = False


def declared_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        value = float(stream.duration * stream.time_base)
        if value > 0 and math.isfinite(value):
            return value
    if container.duration is not None and container.duration > 0:
        return float(container.duration) / av.time_base
    return None


def sample_aspect_ratio(stream: av.video.stream.VideoStream) -> Fraction | None:
    for sar in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if sar is not None and sar > 0:
            return Fraction(int(sar.numerator), int(sar.denominator))
    return None


def frame_rate(stream: av.video.stream.VideoStream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < float(rate) < 1000:
            return float(rate)
    return None
