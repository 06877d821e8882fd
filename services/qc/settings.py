from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import StageSettings
from services.media.settings import MediaSettings
from services.quality.settings import QualitySettings


class QcSettings(StageSettings):
    """Its own consumer group on `videos.indexed`: QC never slows ingestion down, it only lags."""

    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_QC_", extra="ignore")

    group_id: str = "clipstream-qc"
    health_port: int = 9108
    max_batch_messages: int = Field(default=16, ge=1)
    max_wait_s: float = Field(default=0.2, gt=0)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    # references are admitted by the decoder's allowlists (`CLIPSTREAM_DECODER_*`), like video sources
    media: MediaSettings = Field(default_factory=MediaSettings)
