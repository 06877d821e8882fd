from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import CommonSettings


class EnricherSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_ENRICHER_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    app_id: str = "clipstream-enricher"
    web_host: str = "127.0.0.1"
    web_port: int = 9104
    data_dir: str = Field(default="", description="faust state folder; default: <home>/enricher")
