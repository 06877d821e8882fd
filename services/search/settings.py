from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import CommonSettings


class SearchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_SEARCH_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    host: str = "127.0.0.1"
    port: int = 8080
    query_frame_seconds: float = Field(default=0.25, gt=0, description="frame spacing for video queries")
    query_max_frames: int = Field(default=64, ge=1, description="a video query uses at most this many frames")
    max_limit: int = 100
    max_offset: int = 1000
    max_upload_bytes: int = Field(default=50 * 1024**2, description="image/video query uploads")
    api_keys: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description='bearer token -> tenant, e.g. \'{"k3y": "tenant-a"}\'; empty: one key is generated at start',
    )
    health_port: int = 9105
