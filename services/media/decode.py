"""Decode a video once, front to back: probe, shot boundaries, segments and their JPEG keyframes.

Frames stream through; only a segment's few candidate pictures are held, so memory stays flat for
long videos. Times are presentation times from the first frame, so variable frame rate is exact.
With fixed segments and `keyframes_only`, the decoder skips every non-intra frame (no motion
compensation at all), which is what makes sampling cheap on long-GOP sources.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import av
import av.error
import numpy as np
from PIL import Image

from services.common.fingerprints import Timed
from services.media.errors import DecodeError
from services.media.fingerprints import INTERVAL_S, fingerprint
from services.media.pictures import Thumbnailer, clockwise_rotation, display_size, jpeg, picture
from services.media.probe import Probe, declared_duration, frame_rate, sample_aspect_ratio
from services.media.segments import ClosedSegment, Segmenter, SegmentPolicy
from services.media.shots import ShotConfig, ShotDetector

_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "gif", "bmp_pipe", "tiff_pipe")
# The demuxers FFmpeg may use. Each reads only the bytes it was given: playlist and list formats (hls, dash,
# concat, ffconcat, image2 patterns, tee...) open further files or hosts and would escape the allowlist.
# Still images and audio-only formats stay, so such uploads get their precise reason.
ALLOWED_FORMATS = ",".join(
    (
        "mov,mp4,m4a,3gp,3g2,mj2",
        "matroska,webm",
        "avi",
        "ogg",
        "flv",
        "asf",
        "mpeg",
        "mpegts",
        "mpegvideo",
        "mxf",
        "nut",
        "ivf",
        "h264",
        "hevc",
        "m4v",
        "yuv4mpegpipe",
        "dv",
        "gif",
        *(f for f in _IMAGE_FORMATS if f not in ("image2", "gif")),
        "wav",
        "mp3",
        "aac",
        "flac",
    )
)


@dataclass(frozen=True)
class DecodeLimits:
    max_duration_s: float = 4 * 3600.0
    max_pixels: int = 8192 * 8192
    time_budget_s: float = 900.0
    max_aspect_ratio: float = 20.0  # of the displayed picture (after the sample aspect ratio)
    # keyframe candidates are held as decoded frames while their segment is open (up to 20 of them); past this
    # many bytes of them, a candidate is turned into its small picture at once, so memory does not grow with
    # the resolution (measured on a 4K single-shot clip: peak RSS 385 MiB holding every candidate, 212 MiB)
    max_held_bytes: int = 64 * 1024**2


@dataclass(frozen=True)
class DecodeOptions:
    segments: SegmentPolicy = field(default_factory=SegmentPolicy)
    shots: ShotConfig = field(default_factory=ShotConfig)
    limits: DecodeLimits = field(default_factory=DecodeLimits)
    short_side: int = 256
    jpeg_quality: int = 90
    keyframes_only: bool = False
    # shots mode: skip frames no other frame references (most B-frames): nothing is built on them, so the
    # decoder does not reconstruct them at all, and a cut is still seen on the next decoded frame (measured:
    # shot precision/recall unchanged at the bench's 0.5 s tolerance; see bench.decode for the speed)
    reference_frames_only: bool = True
    # in-loop deblocking on intra frames only (FFmpeg's skip_loop_filter=nokey; H.264, HEVC, VP8, Theora):
    # ~15 % less decode time with the same shots; keyframe pictures drift from the exact decode along a GOP,
    # about as much as their JPEG q90 encoding already costs (bench.decode on the shared clips: PSNR >= 34 dB,
    # median 46 dB, vs 35.5 / 43.6 dB for the JPEG; a 6-s GOP of low-bitrate noise reaches 27 dB).
    # False: bit-exact pictures, for a decoder that has CPU to spare.
    skip_deblocking: bool = True
    # model-free fingerprints of the decoded frames every this many seconds (see `fingerprints`); 0: none
    fingerprint_interval_s: float = INTERVAL_S
    fingerprint_short_side: int = 96


@dataclass(frozen=True)
class Keyframe:
    t: float
    jpeg: bytes


@dataclass(frozen=True)
class Segment:
    index: int
    start_s: float
    end_s: float
    keyframes: list[Keyframe]
    fingerprints: list[Timed] = field(default_factory=list)  # of the frames in [start_s, end_s)


@dataclass
class DecodedVideo:
    probe: Probe
    segments: list[Segment]
    frames_decoded: int = 0


def decode_video(source: Path | BinaryIO, options: DecodeOptions) -> DecodedVideo:
    target = str(source) if isinstance(source, Path) else source
    restrict = {"format_whitelist": ALLOWED_FORMATS}
    if isinstance(source, Path):
        restrict["protocol_whitelist"] = "file"
    try:
        container = av.open(target, metadata_errors="ignore", options=restrict)
    except av.error.FFmpegError as exc:
        message = str(exc)
        if exc.errno == errno.EINVAL:
            raise DecodeError(
                "format_not_allowed",
                "not an allowed video container (playlists, concat lists and other formats that open further "
                f"files are refused): {message}",
            ) from exc
        if "moov atom not found" in message:
            raise DecodeError("truncated_video", f"the MP4 index (moov) is missing: {message}") from exc
        raise DecodeError("not_a_video", f"not a media file FFmpeg can read: {message}") from exc
    assert isinstance(container, av.container.InputContainer)
    with container:
        try:
            return _decode(container, options)
        except DecodeError:
            raise
        except av.error.FFmpegError as exc:
            raise DecodeError("corrupt_video", str(exc)) from exc


def _frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, keyframes_only: bool
) -> Iterator[av.VideoFrame]:
    if not keyframes_only:
        yield from container.decode(stream)
        return
    for packet in container.demux(stream):
        if packet.is_keyframe or packet.size == 0:  # the empty packet at the end flushes the decoder
            for frame in packet.decode():
                assert isinstance(frame, av.VideoFrame)
                yield frame


def _frame_bytes(frame: av.VideoFrame) -> int:
    return sum(plane.buffer_size for plane in frame.planes)


def _decode(container: av.container.InputContainer, options: DecodeOptions) -> DecodedVideo:
    if container.format.name in _IMAGE_FORMATS:
        raise DecodeError("not_a_video", f"a still image ({container.format.name}), not a video")
    if not container.streams.video:
        kind = "audio only" if container.streams.audio else "no streams"
        raise DecodeError("no_video_stream", f"the file has no video stream ({kind})")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    codec = ctx.name if ctx is not None else None
    if not codec or codec not in av.codecs_available:
        raise DecodeError("unsupported_codec", f"no decoder for the video stream's codec ({codec or 'unknown'})")
    limits = options.limits
    if ctx.width * ctx.height > limits.max_pixels:
        raise DecodeError("too_many_pixels", f"{ctx.width}x{ctx.height} exceeds {limits.max_pixels} pixels")
    declared = declared_duration(container, stream)
    if declared is not None and declared > limits.max_duration_s:
        raise DecodeError("too_long", f"{declared:.0f}s exceeds {limits.max_duration_s:.0f}s")
    policy = options.segments
    keyframes_only = options.keyframes_only and policy.mode == "fixed"
    stream.thread_type = "AUTO"
    skipping = keyframes_only or (options.reference_frames_only and policy.mode == "shots")
    if keyframes_only:
        ctx.skip_frame = "NONKEY"
    elif skipping:
        ctx.skip_frame = "NONREF"
    if options.skip_deblocking:
        ctx.options = {**ctx.options, "skip_loop_filter": "nokey"}
    sar = sample_aspect_ratio(stream)
    shown_w, shown_h = display_size(ctx.width, ctx.height, sar, 0)
    if max(shown_w, shown_h) > limits.max_aspect_ratio * min(shown_w, shown_h):
        raise DecodeError(
            "bad_aspect_ratio",
            f"displayed at {shown_w}x{shown_h} (sample aspect ratio {sar}), longer than {limits.max_aspect_ratio:g}:1",
        )
    if shown_w * shown_h > limits.max_pixels:
        raise DecodeError("too_many_pixels", f"displayed at {shown_w}x{shown_h}, over {limits.max_pixels} pixels")
    detector = ShotDetector(options.shots) if policy.mode == "shots" else None
    thumb = Thumbnailer()
    segmenter: Segmenter[av.VideoFrame | Image.Image] = Segmenter(policy)
    segments: list[Segment] = []
    deadline = time.monotonic() + limits.time_budget_s
    origin: float | None = None
    rotation = 0
    interlaced = False
    last_t = 0.0
    frames = 0
    timed: list[Timed] = []  # fingerprints not yet given to a segment
    next_print = 0.0

    def candidate(frame: av.VideoFrame) -> av.VideoFrame | Image.Image:
        """The frame itself (converted only if chosen) while the held frames fit the budget, else its picture."""
        held = sum(_frame_bytes(c) for _, c in segmenter.candidates if isinstance(c, av.VideoFrame))
        if held + _frame_bytes(frame) > limits.max_held_bytes:
            return picture(frame, sar, options.short_side)
        return frame

    def still(c: av.VideoFrame | Image.Image) -> Image.Image:
        return picture(c, sar, options.short_side) if isinstance(c, av.VideoFrame) else c

    def emit(closed: list[ClosedSegment[av.VideoFrame | Image.Image]]) -> None:
        for seg in closed:
            keyframes = [Keyframe(round(t, 3), jpeg(still(c), options.jpeg_quality)) for t, c in seg.keyframes]
            mine = [p for p in timed if p[0] < seg.end_s]
            del timed[: len(mine)]
            segments.append(Segment(seg.index, round(seg.start_s, 3), round(seg.end_s, 3), keyframes, mine))

    try:
        for frame in _frames(container, stream, keyframes_only):
            if frame.time is None:
                continue
            if origin is None:
                origin = float(frame.time)
                rotation = clockwise_rotation(frame)
                interlaced = bool(frame.interlaced_frame)
            t = max(last_t, float(frame.time) - origin)
            last_t = t
            frames += 1
            if t > limits.max_duration_s:
                raise DecodeError("too_long", f"decoded past {limits.max_duration_s:.0f}s")
            if frames % 16 == 0 and time.monotonic() > deadline:
                raise DecodeError(
                    "decode_timeout", f"not decoded within {limits.time_budget_s:.0f}s (reached {t:.1f}s)"
                )
            if options.fingerprint_interval_s > 0 and t >= next_print:
                # on a fixed grid, so a copy and its source hash the frames nearest the same instants
                next_print = (t // options.fingerprint_interval_s + 1) * options.fingerprint_interval_s
                found = fingerprint(np.asarray(picture(frame, sar, options.fingerprint_short_side)))
                if found is not None:
                    timed.append((t, found))
            cut = detector.push(t, thumb(frame)) if detector is not None else False
            emit(segmenter.boundaries(t, cut))
            if segmenter.full:
                break
            if segmenter.wants(t):
                segmenter.add(t, candidate(frame))
    except av.error.FFmpegError as exc:
        if frames == 0:
            raise DecodeError("corrupt_video", f"no frame could be decoded: {exc}") from exc
        raise DecodeError("corrupt_video", f"decoding failed at {last_t:.1f}s: {exc}") from exc
    if frames == 0:
        raise DecodeError("corrupt_video", "the video stream holds no decodable frame")

    fps = frame_rate(stream)
    decoded_end = last_t + (1.0 / fps if fps else 0.0)
    if declared is not None and not keyframes_only and not segmenter.full and decoded_end < 0.9 * declared - 0.5:
        raise DecodeError("truncated_video", f"frames stop at {decoded_end:.1f}s of a declared {declared:.1f}s")
    end = max(decoded_end, declared or 0.0) if keyframes_only else decoded_end
    emit(segmenter.finish(end))
    width, height = display_size(ctx.width, ctx.height, sar, rotation)
    probe = Probe(
        container=container.format.name,
        codec=codec,
        profile=ctx.profile or None,
        pixel_format=ctx.format.name if ctx.format is not None else None,
        width=width,
        height=height,
        rotation=rotation,
        sample_aspect_ratio=str(sar) if sar is not None else None,
        fps=round(fps, 3) if fps else None,
        duration_s=round(end, 3),
        bitrate=container.bit_rate or None,
        has_audio=bool(container.streams.audio),
        frame_count=stream.frames or (frames if not skipping else None),
        interlaced=interlaced,
    )
    return DecodedVideo(probe, segments, frames)
