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
    seaweedfs: bool = Field(
        default=True, description="start SeaweedFS as the local S3 endpoint (the gateway's uploads land there)"
    )
    triton: bool = Field(
        default=True, description="start Triton (off where it runs elsewhere: the pods of the Kubernetes smoke test)"
    )
    seaweedfs_base_port: int = 18330
    s3_port: int = 18333
    s3_access_key: SecretStr | None = Field(default=None, description="none: generated into the state folder")
    s3_secret_key: SecretStr | None = Field(default=None, description="none: generated into the state folder")
    s3_buckets: list[str] = Field(default_factory=lambda: ["uploads"])
    seaweedfs_notify_topic: str = Field(
        default="", description="publish the filer's change events to this Kafka topic (object-store notifications)"
    )

    def s3_credentials(self) -> tuple[str, str]:
        """The local object store's keys: as configured, or generated once (the store and its clients share them)."""
        access = (
            self.s3_access_key.get_secret_value() if self.s3_access_key else self.common.local_secret("s3-access-key")
        )
        secret = (
            self.s3_secret_key.get_secret_value() if self.s3_secret_key else self.common.local_secret("s3-secret-key")
        )
        return access, secret

    @property
    def run_dir(self) -> Path:
        return (self.common.home / "run").resolve()

    @property
    def data_dir(self) -> Path:
        return (self.common.home / "data").resolve()


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1].split("/", 1)[0])
