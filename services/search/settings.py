from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import CommonSettings
from services.media.images import ImageLimits
from services.media.settings import MediaSettings
from services.quality.settings import QualitySettings
from services.text import sentences


class SearchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_SEARCH_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    # what the decoder admits (`CLIPSTREAM_DECODER_*`): playback links and references named in a video's metadata
    media: MediaSettings = Field(default_factory=MediaSettings)
    host: str = "127.0.0.1"
    port: int = 8080
    query_frame_seconds: float = Field(default=0.25, gt=0, description="frame spacing for video queries")
    query_max_frames: int = Field(default=64, ge=1, description="a video query uses at most this many frames")
    query_decode_budget_s: float = Field(default=30.0, gt=0, description="a video query's decode is cut off after")
    query_decode_max_memory_bytes: int = Field(default=4 * 1024**3, ge=0, description="its child's address space")
    query_image_max_pixels: int = Field(default=40_000_000, ge=1)
    query_image_max_side: int = Field(default=16384, ge=1)
    query_image_max_aspect: float = Field(default=20.0, ge=1)
    query_image_short_side: int = Field(default=448, ge=32, description="larger query images are scaled down")
    max_limit: int = 100
    text_encoder_dir: Path = Field(
        default_factory=sentences.default_folder,
        description="the on-screen text's sentence encoder (exported by the OCR stage or `clipstream stack up`)",
    )
    text_min_cosine: float = Field(
        default=0.5, ge=0, le=1, description="a text hit naming none of the query's words needs this cosine"
    )
    cache_threshold: float = Field(
        default=0.95, gt=0, le=1, description="cache-hit prompt cosine when the model has no calibrated one"
    )
    cache_reference_threshold: float = Field(
        default=0.9, gt=0, le=1, description="references' cosine for a hit when the model has no `duplicate` one"
    )
    max_offset: int = 1000
    max_upload_bytes: int = Field(default=50 * 1024**2, description="image/video query uploads")
    api_keys: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description='bearer token -> tenant, e.g. \'{"k3y": "tenant-a"}\'; empty: one key is generated at start',
    )
    health_port: int = 9105
    gateway_url: str = Field(default="", description="the upload gateway's URL as browsers reach it (page uploads)")
    media_url_ttl_s: int = Field(default=300, ge=10, le=86400, description="how long a playback link works")
    media_secret: SecretStr | None = Field(
        default=None, description="signs playback links; default: derived from the API keys (same on every replica)"
    )

    def image_limits(self) -> ImageLimits:
        return ImageLimits(
            max_pixels=self.query_image_max_pixels,
            max_side=self.query_image_max_side,
            max_aspect=self.query_image_max_aspect,
            short_side=self.query_image_short_side,
        )
