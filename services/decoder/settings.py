from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import CommonSettings


class DecoderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_DECODER_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    group_id: str = "clipstream-decoder"
    health_host: str = "127.0.0.1"
    health_port: int = 9101
    allowed_roots: list[Path] = Field(
        default_factory=lambda: [Path.cwd()], description="file:// sources must resolve under one of these"
    )
    segment_seconds: float = Field(default=4.0, gt=0)
    keyframe_short_side: int = Field(default=256, ge=32, le=1024)
    jpeg_quality: int = Field(default=90, ge=30, le=100)
    max_segments: int = Field(default=2000, ge=1)
    max_bytes: int = Field(default=4 * 1024**3, description="larger sources are rejected before decoding")
    max_duration_s: float = 4 * 3600.0
    max_pixels: int = 8192 * 8192
