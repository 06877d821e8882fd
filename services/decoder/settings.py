from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from services.common.settings import STAGE_GROUPS, StageSettings
from services.media.settings import MediaSettings


class DecoderSettings(StageSettings, MediaSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_DECODER_", extra="ignore")

    group_id: str = STAGE_GROUPS["decoder"]
    health_port: int = 9101
