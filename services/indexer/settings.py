from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import STAGE_GROUPS, StageSettings


class IndexerSettings(StageSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_INDEXER_", extra="ignore")

    group_id: str = STAGE_GROUPS["indexer"]
    health_port: int = 9103
    max_batch_messages: int = Field(default=256, ge=1)
    max_wait_s: float = Field(default=0.2, gt=0)
