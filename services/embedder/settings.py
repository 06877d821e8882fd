from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import STAGE_GROUPS, StageSettings


class EmbedderSettings(StageSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_EMBEDDER_", extra="ignore")

    group_id: str = STAGE_GROUPS["embedder"]
    health_port: int = 9102
    max_batch_messages: int = Field(default=32, ge=1, description="segments gathered into one Triton round")
    max_wait_s: float = Field(default=0.05, gt=0, description="how long to wait to fill a batch")
    triton_timeout_s: float = 60.0
    triton_transport: Literal["grpc", "http"] = "grpc"
    max_batch_images: int = Field(
        default=64, ge=1, description="images per Triton request (the model's max_batch_size)"
    )
    max_in_flight: int = Field(default=4, ge=1, description="Triton requests outstanding at once")
    served_model_ttl_s: float = Field(
        default=5.0, gt=0, description="how long the served collection's model is cached (after a reindex switch)"
    )
    shared_memory: Literal["none", "system"] = Field(
        default="none", description="'system' when Triton runs on the same host (pod): pixels skip the socket"
    )
