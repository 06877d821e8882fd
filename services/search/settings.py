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
