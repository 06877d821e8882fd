from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import StageSettings


class EnricherSettings(StageSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_ENRICHER_", extra="ignore")

    group_id: str = Field(default="clipstream-enricher", description="the faust app id (its consumer group)")
    health_port: int = Field(default=9104, description="faust's web server: /healthz, /readyz, /metrics")
    data_dir: str = Field(default="", description="faust state folder; default: <home>/enricher")
