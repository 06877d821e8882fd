"""Settings of the media library: source allowlists, segmentation, keyframes and limits."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.media.decode import DecodeLimits, DecodeOptions
from services.media.isolated import IsolatedDecoder
from services.media.segments import SegmentPolicy
from services.media.shots import ShotConfig
from services.media.sources import S3Access, SourcePolicy


class MediaSettings(BaseSettings):
    """How sources are admitted and videos cut into segments and keyframes.

    Read from the decoder's variables (`CLIPSTREAM_DECODER_*`) wherever they are used, so `reindex` decodes
    a catalogue exactly as the decoder stage did."""

    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_DECODER_", extra="ignore")

    # sources: every scheme is closed unless configured
    allowed_roots: list[Path] = Field(
        default_factory=lambda: [Path.cwd()], description="file:// sources must resolve under one of these"
    )
    http_prefixes: list[str] = Field(default_factory=list, description="e.g. https://cdn.example.com/videos/")
    s3_prefixes: list[str] = Field(default_factory=list, description="e.g. s3://uploads/ or s3://bucket/tenant-a/")
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    source_timeout_s: float = 30.0

    # segmentation and keyframes
    segmentation: Literal["shots", "fixed"] = "shots"
    fixed_segment_s: float = Field(default=4.0, gt=0)
    max_segment_s: float = Field(default=10.0, gt=0, description="longer shots are split")
    min_shot_s: float = Field(default=0.6, ge=0, description="shorter shots merge into the previous one")
    shot_threshold: float = Field(default=ShotConfig.threshold, gt=0)
    keyframes: Literal["middle", "every"] = "middle"
    keyframe_every_s: float = Field(default=2.0, gt=0)
    max_keyframes_per_segment: int = Field(default=4, ge=1)
    max_keyframes_per_video: int = Field(default=256, ge=1)
    keyframes_only: bool = Field(default=False, description="fixed segmentation only: decode intra frames only")
    keyframe_short_side: int = Field(default=256, ge=32, le=1024)
    jpeg_quality: int = Field(default=90, ge=30, le=100)
    max_segments: int = Field(default=2000, ge=1)
    skip_deblocking: bool = Field(
        default=True, description="deblock intra frames only: faster; false gives bit-exact keyframe pictures"
    )
    fingerprint_interval_s: float = Field(
        default=DecodeOptions.fingerprint_interval_s,
        ge=0,
        description="a perceptual hash of the decoded frame every this many seconds (near-duplicate evidence); 0: none",
    )

    # limits
    max_bytes: int = Field(default=4 * 1024**3, description="larger sources are rejected before decoding")
    max_duration_s: float = 4 * 3600.0
    max_pixels: int = 8192 * 8192
    decode_time_budget_s: float = Field(default=900.0, gt=0)
    max_aspect_ratio: float = Field(default=20.0, ge=1, description="of the displayed picture, after SAR")
    max_held_bytes: int = Field(
        default=DecodeLimits.max_held_bytes, ge=0, description="decoded frames held as keyframe candidates"
    )
    max_memory_bytes: int = Field(
        default=8 * 1024**3, ge=0, description="address-space limit of the decoding child process (0: none)"
    )

    def decode_options(self) -> DecodeOptions:
        return DecodeOptions(
            segments=SegmentPolicy(
                mode=self.segmentation,
                fixed_segment_s=self.fixed_segment_s,
                max_segment_s=self.max_segment_s,
                keyframes=self.keyframes,
                keyframe_every_s=self.keyframe_every_s,
                max_keyframes_per_segment=self.max_keyframes_per_segment,
                max_keyframes_per_video=self.max_keyframes_per_video,
                max_segments=self.max_segments,
            ),
            shots=ShotConfig(threshold=self.shot_threshold, min_shot_s=self.min_shot_s),
            limits=DecodeLimits(
                max_duration_s=self.max_duration_s,
                max_pixels=self.max_pixels,
                time_budget_s=self.decode_time_budget_s,
                max_aspect_ratio=self.max_aspect_ratio,
                max_held_bytes=self.max_held_bytes,
            ),
            short_side=self.keyframe_short_side,
            jpeg_quality=self.jpeg_quality,
            keyframes_only=self.keyframes_only,
            skip_deblocking=self.skip_deblocking,
            fingerprint_interval_s=self.fingerprint_interval_s,
        )

    def isolated_decoder(self) -> IsolatedDecoder:
        return IsolatedDecoder(self.source_policy(), self.decode_options(), self.max_memory_bytes)

    def source_policy(self) -> SourcePolicy:
        return SourcePolicy(
            allowed_roots=self.allowed_roots,
            http_prefixes=self.http_prefixes,
            s3_prefixes=self.s3_prefixes,
            s3=S3Access(
                endpoint_url=self.s3_endpoint_url,
                region=self.s3_region,
                access_key=self.s3_access_key.get_secret_value() if self.s3_access_key else None,
                secret_key=self.s3_secret_key.get_secret_value() if self.s3_secret_key else None,
            ),
            max_bytes=self.max_bytes,
            timeout_s=self.source_timeout_s,
        )
