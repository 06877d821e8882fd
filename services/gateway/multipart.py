"""Direct uploads: the bytes go from the client straight into the object store, as S3 multipart parts.

The gateway plans the parts, creates the store's multipart upload and hands out presigned UploadPart URLs (signed
for `s3_public_url`, the store as clients reach it); the client PUTs the parts itself, several at a time and in
any order, and after a cut connection asks which parts the store already has and sends only the others.
Completing checks that every part is there in its planned size, completes the store's upload and registers the
object.

What an upload was started with (its registration, declared size, part size, the store's own upload id) is a
small JSON record next to the object, `<prefix>/<tenant>/<id>/.multipart.json` (a stored file's name never
starts with a dot), so every replica serves every request and none keeps state of its own. The record is found
under the caller's tenant, so another tenant's upload id finds nothing (404).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.common.errors import Conflict, NotFound, PermanentError, TooLarge, TransientError
from services.common.messages import MAX_TAGS, Creator, Metadata, Tag, TenantId, Title
from services.gateway.object_store import ObjectStore
from services.intake.models import Registered, Registration

MIB = 1024**2
MIN_PART_BYTES = 5 * MIB  # S3's smallest part (every part but the last)
MAX_PARTS = 10_000  # S3's most parts in one upload
URLS_PER_ANSWER = 100  # presigning costs about half a millisecond a URL: an answer signs the next 100 parts
RECORD = ".multipart.json"
GONE = ("NoSuchUpload", "NoSuchKey", "NotFound", "404")


@dataclass(frozen=True)
class Plan:
    size: int
    part_size: int

    @property
    def part_count(self) -> int:
        return max(1, _ceil_div(self.size, self.part_size))

    def span(self, number: int) -> tuple[int, int]:
        """Part `number` (from 1) as (offset, length) in the file."""
        offset = (number - 1) * self.part_size
        return offset, min(self.part_size, self.size - offset)


def plan(size: int, part_bytes: int, limit: int) -> Plan:
    """Parts of `part_bytes` (at least S3's 5 MiB), larger (whole MiB) where 10,000 of them would not hold `size`."""
    if size > limit:
        raise TooLarge(f"{size} bytes is over the {limit}-byte limit of a direct upload")
    if size < 1:
        raise PermanentError("the upload is empty", reason="empty_file")
    part = max(part_bytes, MIN_PART_BYTES)
    if _ceil_div(size, part) > MAX_PARTS:
        part = _ceil_div(_ceil_div(size, MAX_PARTS), MIB) * MIB
    return Plan(size, part)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def ranges(numbers: Iterable[int]) -> str:
    """1, 2, 3, 7 → "1-3, 7": which parts, short enough for an error message."""
    out = []
    for _, run in itertools.groupby(enumerate(numbers), lambda pair: pair[1] - pair[0]):
        found = [n for _, n in run]
        out.append(str(found[0]) if len(found) == 1 else f"{found[0]}-{found[-1]}")
    return ", ".join(out)


class MultipartStart(BaseModel):
    """The file to upload and what to register it with, all checked before anything is created."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    size: int = Field(ge=1, description="the file's exact size in bytes")
    content_type: str = Field(default="application/octet-stream", max_length=200)
    title: Title = Field(default="", description="default: the file's name")
    creator: Creator = ""
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    metadata: Metadata = Field(default_factory=dict)


class PartUrl(BaseModel):
    part_number: int
    offset: int
    size: int
    url: str = Field(description="presigned UploadPart: PUT exactly `size` bytes of the file from `offset`")


class StoredPart(BaseModel):
    part_number: int
    size: int
    etag: str


class MultipartUpload(BaseModel):
    upload_id: str
    state: Literal["uploading", "completed"]
    size: int
    part_size: int
    part_count: int
    uploaded: list[StoredPart] = Field(description="the parts the store has")
    missing: int = Field(description="parts still to send: absent, or stored in another size than planned")
    parts: list[PartUrl] = Field(
        description=f"URLs for the first {URLS_PER_ANSWER} parts still to send; ask again (GET) for the next"
    )
    expires_at: datetime = Field(description="when these URLs expire; GET signs fresh ones")
    registered: Registered | None = Field(default=None, description="the registration, once completed")


class MultipartRecord(BaseModel):
    """What an upload was started with, stored next to its object."""

    upload_id: str
    tenant: TenantId
    key: str
    store_upload_id: str
    size: int
    part_size: int
    content_type: str
    registration: Registration
    created_at: datetime
    registered: Registered | None = None

    @property
    def plan(self) -> Plan:
        return Plan(self.size, self.part_size)


def _call(method: Callable[..., Any], **params: Any) -> Any:
    """One store call: a missing upload or object is NotFound, anything else that fails is the store's (503)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return method(**params)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in GONE:
            raise NotFound("no such upload for this tenant (aborted, expired or never started)") from exc
        raise TransientError(f"object store: {exc}", reason="object_store_unavailable") from exc
    except BotoCoreError as exc:
        raise TransientError(f"object store unavailable: {exc}", reason="object_store_unavailable") from exc


class MultipartUploads:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._s3 = store.client
        self._bucket = store.settings.upload_bucket
        self._ttl_s = store.settings.multipart_url_ttl_s

    def _record_key(self, tenant: str, upload_id: str) -> str:
        return f"{self._store.folder_of(tenant, upload_id)}/{RECORD}"

    def create(
        self, tenant: str, upload_id: str, planned: Plan, content_type: str, registration: Registration, key: str
    ) -> MultipartRecord:
        started = _call(self._s3.create_multipart_upload, Bucket=self._bucket, Key=key, ContentType=content_type)
        record = MultipartRecord(
            upload_id=upload_id,
            tenant=tenant,
            key=key,
            store_upload_id=started["UploadId"],
            size=planned.size,
            part_size=planned.part_size,
            content_type=content_type,
            registration=registration,
            created_at=datetime.now(UTC),
        )
        try:
            self.save(record)
        except BaseException:
            self._abort(record)
            raise
        return record

    def save(self, record: MultipartRecord) -> None:
        _call(
            self._s3.put_object,
            Bucket=self._bucket,
            Key=self._record_key(record.tenant, record.upload_id),
            Body=record.model_dump_json().encode(),
            ContentType="application/json",
        )

    def find(self, tenant: str, upload_id: str) -> MultipartRecord:
        found = _call(self._s3.get_object, Bucket=self._bucket, Key=self._record_key(tenant, upload_id))
        record = MultipartRecord.model_validate_json(found["Body"].read())
        if record.tenant != tenant:  # its place carries the tenant already; checked again all the same
            raise NotFound("no such upload for this tenant")
        return record

    def listed(self, record: MultipartRecord) -> dict[int, StoredPart] | None:
        """The parts the store has (every page of them); None once its upload is no longer open (completed or
        aborted)."""
        found: dict[int, StoredPart] = {}
        marker = 0
        while True:
            try:
                page = _call(
                    self._s3.list_parts,
                    Bucket=self._bucket,
                    Key=record.key,
                    UploadId=record.store_upload_id,
                    PartNumberMarker=marker,
                    MaxParts=1000,
                )
            except NotFound:
                return None
            for part in page.get("Parts", []):
                number = int(part["PartNumber"])
                found[number] = StoredPart(part_number=number, size=int(part["Size"]), etag=part["ETag"])
            if not page.get("IsTruncated"):
                return found
            marker = int(page["NextPartNumberMarker"])

    @staticmethod
    def to_send(record: MultipartRecord, listed: dict[int, StoredPart]) -> list[int]:
        planned = record.plan
        return [n for n in range(1, planned.part_count + 1) if n not in listed or listed[n].size != planned.span(n)[1]]

    def state(self, record: MultipartRecord) -> MultipartUpload:
        """Where the upload is, with fresh URLs for the next parts to send."""
        listed = self.listed(record)
        if listed is not None:
            return self.answer(record, listed)
        if record.registered is None and not self.stored(record):
            raise NotFound("the upload was aborted or has expired", reason="upload_gone")
        return self.answer(record, None)

    def answer(self, record: MultipartRecord, listed: dict[int, StoredPart] | None) -> MultipartUpload:
        """`listed` None: the store's upload is completed."""
        planned = record.plan
        expires_at = datetime.now(UTC) + timedelta(seconds=self._ttl_s)
        missing = [] if listed is None else self.to_send(record, listed)
        urls = []
        for number in missing[:URLS_PER_ANSWER]:
            offset, size = planned.span(number)
            params = {"Bucket": self._bucket, "Key": record.key, "UploadId": record.store_upload_id}
            url = self._store.presigner.generate_presigned_url(
                "upload_part", Params={**params, "PartNumber": number}, ExpiresIn=self._ttl_s
            )
            urls.append(PartUrl(part_number=number, offset=offset, size=size, url=url))
        return MultipartUpload(
            upload_id=record.upload_id,
            state="completed" if listed is None else "uploading",
            size=record.size,
            part_size=record.part_size,
            part_count=planned.part_count,
            uploaded=sorted((listed or {}).values(), key=lambda p: p.part_number),
            missing=len(missing),
            parts=urls,
            expires_at=expires_at,
            registered=record.registered,
        )

    def complete(self, record: MultipartRecord) -> None:
        """Complete the store's upload from the parts it lists, each checked against the plan; an upload
        completed before (a retried or racing complete) passes when its object is whole."""
        listed = self.listed(record)
        if listed is not None:
            planned = record.plan
            missing = [n for n in range(1, planned.part_count + 1) if n not in listed]
            if missing:
                raise Conflict(
                    f"{len(missing)} of {planned.part_count} parts are missing: {ranges(missing)}",
                    reason="parts_missing",
                )
            wrong = self.to_send(record, listed)
            if wrong:
                sizes = ", ".join(f"{n}: {listed[n].size} (planned {planned.span(n)[1]})" for n in wrong[:20])
                raise PermanentError(
                    f"parts {ranges(wrong)} differ from their planned size ({sizes}); send them again",
                    reason="part_size_mismatch",
                )
            chosen = [{"PartNumber": n, "ETag": listed[n].etag} for n in range(1, planned.part_count + 1)]
            try:
                _call(
                    self._s3.complete_multipart_upload,
                    Bucket=self._bucket,
                    Key=record.key,
                    UploadId=record.store_upload_id,
                    MultipartUpload={"Parts": chosen},
                )
            except NotFound:
                pass  # completed meanwhile by a racing request: the object is checked below
            else:
                return
        if not self.stored(record):
            raise NotFound("the upload was aborted or has expired", reason="upload_gone")

    def stored(self, record: MultipartRecord) -> bool:
        """The completed object is there, in the declared size."""
        try:
            head = _call(self._s3.head_object, Bucket=self._bucket, Key=record.key)
        except NotFound:
            return False
        return int(head["ContentLength"]) == record.size

    def discard(self, record: MultipartRecord) -> None:
        """Leave nothing behind: the store's upload, the object if it was completed, the record."""
        self._abort(record)
        _call(self._s3.delete_object, Bucket=self._bucket, Key=record.key)
        _call(self._s3.delete_object, Bucket=self._bucket, Key=self._record_key(record.tenant, record.upload_id))

    def _abort(self, record: MultipartRecord) -> None:
        with contextlib.suppress(NotFound):  # completed or aborted already
            _call(self._s3.abort_multipart_upload, Bucket=self._bucket, Key=record.key, UploadId=record.store_upload_id)
