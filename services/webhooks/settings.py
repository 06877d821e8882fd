from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import StageSettings
from services.common.webhooks import WebhookSettings


class WebhooksSettings(StageSettings):
    """The dispatcher (`CLIPSTREAM_WEBHOOKS_*`): its own consumer group on the outcome topics.

    Attempt k+1 of a delivery follows attempt k after `retry_initial_s * retry_factor**(k-1)` seconds, at most
    `retry_max_s`, each wait scaled by a random factor in [1 - jitter, 1 + jitter]; after `max_attempts` the
    delivery is dead-lettered with its history. Defaults: 5 s, 20 s, 80 s, 5.3 min, 21 min, 1 h, 1 h (8
    attempts over about 2.5 h)."""

    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_WEBHOOKS_", extra="ignore")

    group_id: str = "clipstream-webhooks"
    health_port: int = 9109
    endpoints: WebhookSettings = Field(default_factory=WebhookSettings)  # the key and allowlist, shared
    request_timeout_s: float = Field(default=10.0, gt=0, description="one attempt, connect to last response byte")
    max_attempts: int = Field(default=8, ge=1)
    retry_initial_s: float = Field(default=5.0, gt=0)
    retry_factor: float = Field(default=4.0, ge=1)
    retry_max_s: float = Field(default=3600.0, gt=0)
    retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    concurrency_per_endpoint: int = Field(default=4, ge=1, le=64, description="requests in flight to one endpoint")
    max_pending_per_endpoint: int = Field(
        default=1000, ge=1, description="beyond this an endpoint's new deliveries are dead-lettered at once"
    )
    max_pending_records: int = Field(
        default=20000, ge=1, description="outcome records with unfinished deliveries; beyond it consumption pauses"
    )
    max_batch_messages: int = Field(default=200, ge=1)
    commit_interval_s: float = Field(default=1.0, gt=0)
    shutdown_grace_s: float = Field(default=5.0, ge=0, description="on SIGTERM, time given to deliveries in flight")
