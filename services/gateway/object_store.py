"""Storing an upload's bytes in the object store as they arrive, bounded while streaming.

The body is cut into multipart parts (8 MiB) and sent as it is read: memory stays at one part whatever
the upload's size, and a body that passes the limit is refused (and its multipart upload aborted) at the
byte that crosses it, never after buffering it whole.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from services.common.errors import PermanentError, TooLarge, TransientError
from services.gateway.settings import GatewaySettings


@dataclass(frozen=True)
class Stored:
    uri: str
    size: int


def safe_name(filename: str) -> str:
    """The last path segment, reduced to characters every store and URI keeps as they are."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip("._")
    return name[:120] or "upload"


def _s3_client(settings: GatewaySettings, endpoint_url: str | None) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
        aws_secret_access_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


class ObjectStore:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self._client: Any = _s3_client(settings, settings.s3_endpoint_url)
        public = settings.s3_public_url
        # presigned URLs name the store as clients reach it (the signature covers the host)
        self.presigner: Any = (
            _s3_client(settings, public) if public and public != settings.s3_endpoint_url else self._client
        )

    @property
    def client(self) -> Any:
        return self._client

    def folder_of(self, tenant: str, upload_id: str) -> str:
        return f"{self.settings.upload_prefix.strip('/')}/{tenant}/{upload_id}"

    def key_for(self, tenant: str, filename: str, upload_id: str | None = None) -> str:
        """Where an upload's bytes go; a keyed upload's place derives from its event id, so a retry of it
        writes the same object instead of a second one."""
        return f"{self.folder_of(tenant, upload_id or uuid.uuid4().hex)}/{safe_name(filename)}"

    def uri_of(self, key: str) -> str:
        return f"s3://{self.settings.upload_bucket}/{key}"

    async def store(self, key: str, body: AsyncIterator[bytes], content_type: str) -> Stored:
        from botocore.exceptions import BotoCoreError, ClientError
        from starlette.concurrency import run_in_threadpool

        bucket = self.settings.upload_bucket
        limit, part_size = self.settings.max_upload_bytes, self.settings.upload_part_bytes
        try:
            started = await run_in_threadpool(
                self._client.create_multipart_upload, Bucket=bucket, Key=key, ContentType=content_type
            )
        except (BotoCoreError, ClientError) as exc:
            raise TransientError(f"object store unavailable: {exc}", reason="object_store_unavailable") from exc
        upload_id = started["UploadId"]
        parts: list[dict[str, Any]] = []
        buffer = bytearray()
        size = 0
        try:
            async for chunk in body:
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"the upload passed {limit} bytes")
                buffer += chunk
                while len(buffer) >= part_size:
                    await self._part(bucket, key, upload_id, parts, bytes(buffer[:part_size]))
                    del buffer[:part_size]
            if size == 0:
                raise PermanentError("the upload is empty", reason="empty_file")
            if buffer or not parts:
                await self._part(bucket, key, upload_id, parts, bytes(buffer))
            await run_in_threadpool(
                self._client.complete_multipart_upload,
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            await run_in_threadpool(self._abort, bucket, key, upload_id)
            raise
        return Stored(uri=self.uri_of(key), size=size)

    async def _part(self, bucket: str, key: str, upload_id: str, parts: list[dict[str, Any]], data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError
        from starlette.concurrency import run_in_threadpool

        number = len(parts) + 1
        try:
            done = await run_in_threadpool(
                self._client.upload_part, Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
            )
        except (BotoCoreError, ClientError) as exc:
            raise TransientError(f"object store unavailable: {exc}", reason="object_store_unavailable") from exc
        parts.append({"PartNumber": number, "ETag": done["ETag"]})

    def _abort(self, bucket: str, key: str, upload_id: str) -> None:
        # best effort: a store expires incomplete multipart uploads by its own lifecycle rules
        with contextlib.suppress(Exception):
            self._client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)

    def delete(self, uri: str) -> None:
        """Remove an object whose registration failed (best effort: a store's lifecycle rules sweep the rest)."""
        prefix = f"s3://{self.settings.upload_bucket}/"
        if uri.startswith(prefix):
            with contextlib.suppress(Exception):
                self._client.delete_object(Bucket=self.settings.upload_bucket, Key=uri.removeprefix(prefix))

    def ready(self) -> bool:
        try:
            self._client.head_bucket(Bucket=self.settings.upload_bucket)
            return True
        except Exception:
            return False
