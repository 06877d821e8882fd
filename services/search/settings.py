from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import CommonSettings


class SearchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_SEARCH_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    host: str = "127.0.0.1"
    port: int = 8080
    query_keyframe_seconds: float = Field(default=1.0, gt=0, description="keyframe spacing for video queries")
    max_limit: int = 100
