"""Settings shared by every service; each service nests these under its own env prefix.

Env vars: `CLIPSTREAM_*` for the shared block, `CLIPSTREAM_<SERVICE>_*` for a service's own knobs.
Secrets (Milvus token, API keys) come only from here, never from code or CLI arguments.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.retry import RetryPolicy


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_", extra="ignore")

    home: Path = Field(default=Path(".clipstream"), description="state of the local stack: data, logs, pids")
    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_session_timeout_ms: int = 10000
    kafka_transaction_timeout_ms: int = Field(
        default=60000, ge=1000, description="the broker aborts a transaction left open this long (a stuck producer)"
    )
    topic_partitions: int = Field(default=6, ge=1, description="the most replicas a consuming service can use")
    topic_replication_factor: int = Field(default=1, ge=1, description="3 on a production cluster")
    triton_grpc_url: str = "127.0.0.1:18001"
    triton_http_url: str = "127.0.0.1:18000"
    milvus_uri: str = "http://127.0.0.1:19530"
    milvus_token: SecretStr | None = None
    milvus_index_type: Literal["HNSW", "IVF_FLAT", "FLAT"] = "HNSW"
    milvus_hnsw_m: int = Field(default=16, ge=4, le=64)
    milvus_hnsw_ef_construction: int = Field(default=200, ge=8)
    milvus_search_ef: int = Field(default=512, ge=8, description="HNSW search breadth (at least the fetch size)")
    milvus_exact_max_rows: int = Field(
        default=256, ge=0, description="filters admitting at most this many segments are searched exactly"
    )
    milvus_tenant_buckets: int = Field(
        default=64, ge=1, le=1024, description="partitions the tenant partition key hashes into (new collections)"
    )
    milvus_search_consistency: Literal["Strong", "Bounded", "Session", "Eventually"] = Field(
        default="Bounded",
        description="read consistency of searches; the indexer's Strong read before `videos.indexed` makes "
        "an indexed video visible at every level, and Strong costs ~200 ms a read on a Milvus server",
    )
    clip_model: str = Field(
        default="",
        description="CLIP to serve: an open_clip/HF folder, 'NAME@PRETRAINED', or empty for the shipped toy model",
    )
    face_model: Path | None = Field(
        default=None,
        description="a face-embedding ONNX model (e.g. an ArcFace export) for face crops; default: the served CLIP",
    )
    clip_device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="where CLIP runs in Triton's Python backend and in-process: auto = GPU if any"
    )
    kafka_call_timeout_s: float = Field(
        default=30.0, gt=0, description="a transactional Kafka call; one stuck past 1.5x this exits the process"
    )
    retry_max_attempts: int = Field(
        default=RetryPolicy.max_attempts,
        ge=1,
        description="tries of a message failing transiently before it is dead-lettered with its history",
    )
    retry_backoff_max_s: float = Field(
        default=RetryPolicy.backoff_max_s, gt=0, description="longest wait between two tries"
    )
    thresholds_file: Path | None = Field(
        default=None,
        description="per-model score thresholds written by `clipstream calibrate`; default <home>/thresholds.json",
    )
    log_level: str = "INFO"
    otel_exporter: str = Field(
        default="none", description="none | console | otlp (OTEL_TRACES_EXPORTER wins; OTLP reads OTEL_EXPORTER_OTLP_*)"
    )

    @property
    def default_model_dir(self) -> Path:
        """The small CLIP trained on the toy world (`clipstream model train-toy`), shipped in the package."""
        return Path(__file__).resolve().parents[1] / "clip" / "toy" / "weights"

    @property
    def thresholds_path(self) -> Path:
        return self.thresholds_file or self.home / "thresholds.json"

    def resolved_clip_model(self) -> str:
        return self.clip_model or str(self.default_model_dir)

    def local_api_key(self) -> str:
        """A generated API key kept in the state folder (mode 0600): for a local stack that configured none."""
        return self.local_secret("search-api-key")

    def local_secret(self, name: str) -> str:
        """A secret generated once into the state folder (mode 0600), for a local stack that configured none."""
        path = self.home / name
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(24))
        return path.read_text().strip()

    def retry_policy(self) -> RetryPolicy:
        """`RetryPolicy` with what env sets (`CLIPSTREAM_RETRY_*`); the rest keeps its defaults."""
        return RetryPolicy(max_attempts=self.retry_max_attempts, backoff_max_s=self.retry_backoff_max_s)

    def processor_fields(self) -> dict[str, Any]:
        """The `ProcessorConfig` fields every stage takes from here."""
        return {"retry": self.retry_policy(), "kafka_timeout_s": self.kafka_call_timeout_s}


STAGE_GROUPS: Final[Mapping[str, str]] = {
    "decoder": "clipstream-decoder",
    "embedder": "clipstream-embedder",
    "indexer": "clipstream-indexer",
}  # the stages' default consumer groups; each stage's settings default to its own


class _StageGroup(BaseSettings):
    """Only a stage's `group_id`, under the prefix `stage_group_id` gives it."""

    model_config = SettingsConfigDict(extra="ignore")

    group_id: str = ""  # unset: the stage's default


def stage_group_id(stage: str) -> str:
    """A stage's consumer group as its own settings read it (`CLIPSTREAM_<STAGE>_GROUP_ID`, else its default), for
    a process that waits on it without depending on the stage's package (the reindex drains the embedder's and the
    indexer's)."""
    prefix = f"CLIPSTREAM_{stage.upper()}_"
    return _StageGroup(_env_prefix=prefix).group_id or STAGE_GROUPS[stage]  # type: ignore[call-arg]


class StageSettings(BaseSettings):
    """What every consuming service shares; each sets its env prefix and the defaults of its group and port."""

    model_config = SettingsConfigDict(extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    group_id: str = Field(description="Kafka consumer group: replicas of one stage share it")
    health_host: str = "127.0.0.1"
    health_port: int = Field(description="/healthz, /readyz and /metrics")

    @property
    def backfill_group_id(self) -> str:
        """The group of the stage's backfill consumer (`clipstream reindex`): beside, never inside, its own."""
        return f"{self.group_id}-backfill"

    backfill_quiet_s: float = Field(
        default=3.0, ge=0, description="a stage's backfill (reindex) waits until its fresh input was quiet this long"
    )
    backfill_max_hold_s: float = Field(
        default=30.0,
        gt=0,
        description="a backfill held this long by busy fresh input takes one batch anyway (a reindex never starves)",
    )
