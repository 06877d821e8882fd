"""Where the local stack keeps its downloads and which loopback ports it uses."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import CommonSettings


class StackSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_STACK_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    cache_dir: Path = Field(default=Path.home() / ".cache" / "clipstream", description="jars, Triton binary")
    host: str = "127.0.0.1"
    kafka_controller_port: int = 19093
    kafka_heap: str = "768m"
    pytriton_version: str = "0.7.0"
    triton_metrics_port: int = 18002
    model_repository: Path = Path("triton_models")
    milvus_lite: bool = Field(default=True, description="start a Milvus Lite server at common.milvus_uri")
    seaweedfs: bool = Field(default=False, description="start SeaweedFS as a local S3 endpoint")
    seaweedfs_base_port: int = 18330
    s3_port: int = 18333
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_buckets: list[str] = Field(default_factory=lambda: ["uploads"])
    seaweedfs_notify_topic: str = Field(
        default="", description="publish the filer's change events to this Kafka topic (object-store notifications)"
    )

    @property
    def run_dir(self) -> Path:
        return (self.common.home / "run").resolve()

    @property
    def data_dir(self) -> Path:
        return (self.common.home / "data").resolve()


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1].split("/", 1)[0])
