from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import CommonSettings
from services.common.webhooks import WebhookSettings
from services.media.settings import MediaSettings


class GatewaySettings(BaseSettings):
    """The upload gateway: HTTP registration and uploads (`CLIPSTREAM_GATEWAY_*`)."""

    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_GATEWAY_", extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    # the decoder's source allowlist (CLIPSTREAM_DECODER_*): an upload the decoder would refuse is refused here
    media: MediaSettings = Field(default_factory=MediaSettings)
    host: str = "127.0.0.1"
    port: int = 8090
    api_keys: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description='bearer token -> tenant, e.g. \'{"k3y": "tenant-a"}\'; empty: the local stack\'s generated key',
    )
    max_upload_bytes: int = Field(
        default=4 * 1024**3, ge=1, description="an upload body beyond this is refused (413) while it streams"
    )
    upload_part_bytes: int = Field(
        default=8 * 1024**2, ge=5 * 1024**2, le=5 * 1024**3, description="S3 multipart part size"
    )
    max_multipart_bytes: int = Field(
        default=50 * 1024**3,
        ge=1,
        le=5 * 1024**4,  # S3's largest object
        description="a direct (multipart) upload declaring more is refused (413) before it is created",
    )
    multipart_url_ttl_s: int = Field(
        default=3600, ge=60, le=7 * 24 * 3600, description="how long a presigned part URL is valid"
    )
    upload_bucket: str = Field(default="uploads", description="where uploaded bytes are stored")
    upload_prefix: str = Field(default="gateway", description="key prefix: <prefix>/<tenant>/<id>/<file name>")
    s3_endpoint_url: str | None = None
    s3_public_url: str | None = Field(
        default=None, description="the store's endpoint as clients reach it, for presigned URLs (default: the above)"
    )
    s3_region: str = "us-east-1"
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    cors_origins: list[str] = Field(
        default_factory=list, description="origins whose pages may call the gateway (the search page's)"
    )
    idempotency_cache: int = Field(default=100_000, ge=1, description="Idempotency-Key answers kept in memory")
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)  # `CLIPSTREAM_WEBHOOKS_*`: endpoints
