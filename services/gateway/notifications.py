"""Object-store notifications → uploads and deletes: object stores tell Kafka when an object lands or goes.

Two record formats arrive on the notifications topic:
- the AWS S3 event JSON (`{"Records": [{"eventName": "ObjectCreated:Put", "s3": {...}}]}`), which AWS,
  MinIO and Ceph RGW publish;
- SeaweedFS filer change events (protobuf `filer_pb.EventNotification`, the Kafka key is the entry's
  full path), which its filer publishes to Kafka (`notification.toml`).
Both become `ObjectEvent`s. A created object under a configured bucket/prefix route becomes a
`videos.uploaded` of the route's tenant (the event id derives from the object's identity, so a redelivered
notification registers once); a removed one becomes a `videos.deleted`. Objects under no route are
someone else's and ignored; a record that cannot be read is dead-lettered with its reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import SettingsConfigDict

from services.common.errors import PermanentError
from services.common.kafka.admin import ensure_topics
from services.common.kafka.processor import Outgoing, ProcessorConfig, Received, Result, TransactionalProcessor
from services.common.messages import TenantId, Topics, VideoDeleted, VideoUploaded
from services.common.settings import StageSettings
from services.intake.models import Registration
from services.intake.registration import VIDEO_SUFFIXES, upload_of, video_id_for

log = logging.getLogger(__name__)


class Route(BaseModel):
    """Objects under s3://bucket/prefix belong to this tenant (prefix matched on whole path segments)."""

    model_config = ConfigDict(extra="forbid")

    bucket: str
    prefix: str = ""
    tenant: TenantId
    creator: str = ""


class NotificationSettings(StageSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPSTREAM_NOTIFICATIONS_", extra="ignore")

    group_id: str = "clipstream-notifications"
    health_port: int = 9106
    topic: str = Field(default="objectstore.events", description="where the object store publishes")
    routes: list[Route] = Field(default_factory=list, description='[{"bucket", "prefix", "tenant", "creator"}]')
    filer_buckets_dir: str = Field(default="/buckets", description="SeaweedFS: the filer folder holding buckets")


@dataclass(frozen=True)
class ObjectEvent:
    kind: Literal["created", "removed"]
    bucket: str
    key: str
    identity: str  # what distinguishes this version of the object: etag/sequencer, or size+mtime
    at: datetime


class NotificationRecord(BaseModel):
    """The raw value; parsed by `ObjectEvents.parse` with the message key (SeaweedFS puts the path there)."""

    value: bytes

    @classmethod
    def from_bytes(cls, value: bytes) -> NotificationRecord:
        return cls(value=value)


class Unreadable(PermanentError):
    reason = "malformed_notification"


class Unusable(PermanentError):
    """A readable notification about an object that cannot become an upload (its key breaks our limits)."""

    reason = "unusable_object"


def parse_s3_event(value: bytes) -> list[ObjectEvent]:
    try:
        body = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unreadable(f"not JSON: {exc}") from exc
    records = body.get("Records") if isinstance(body, dict) else None
    if not isinstance(records, list):
        raise Unreadable("no Records list: not an S3 event notification")
    events = []
    for record in records:
        try:
            name = str(record["eventName"])
            s3 = record["s3"]
            bucket = str(s3["bucket"]["name"])
            obj = s3["object"]
            key = unquote_plus(str(obj["key"]))  # S3 event keys are URL-encoded, '+' for spaces
            at = datetime.fromisoformat(str(record.get("eventTime", "")).replace("Z", "+00:00") or "1970-01-01")
        except (KeyError, TypeError, ValueError) as exc:
            raise Unreadable(f"S3 event record without {exc}") from exc
        kind: Literal["created", "removed"]
        if name.startswith(("ObjectCreated:", "s3:ObjectCreated:")):
            kind = "created"
        elif name.startswith(("ObjectRemoved:", "s3:ObjectRemoved:")):
            kind = "removed"
        else:
            continue  # other events (restore, replication, ...) are not uploads
        identity = str(obj.get("sequencer") or obj.get("eTag") or obj.get("size", ""))
        events.append(ObjectEvent(kind, bucket, key, identity, at if at.tzinfo else at.replace(tzinfo=UTC)))
    return events


def _fields(data: bytes) -> dict[int, list[Any]]:
    """A protobuf message's fields by number: varints as ints, length-delimited as bytes (enough for the
    few EventNotification fields we read; no generated code for SeaweedFS's filer.proto)."""
    out: dict[int, list[Any]] = {}
    i = 0

    def varint() -> int:
        nonlocal i
        shift = result = 0
        while True:
            if i >= len(data):
                raise Unreadable("truncated protobuf varint")
            b = data[i]
            i += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise Unreadable("protobuf varint too long")

    while i < len(data):
        tag = varint()
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            out.setdefault(number, []).append(varint())
        elif wire == 2:
            n = varint()
            if i + n > len(data):
                raise Unreadable("truncated protobuf field")
            out.setdefault(number, []).append(data[i : i + n])
            i += n
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise Unreadable(f"protobuf wire type {wire}")
    return out


def parse_filer_event(key: bytes | None, value: bytes, buckets_dir: str) -> list[ObjectEvent]:
    """SeaweedFS `EventNotification`: old_entry=1, new_entry=2, new_parent_path=4; Entry: name=1,
    is_directory=2, attributes=4 (file_size=1, mtime=2)."""
    path = (key or b"").decode(errors="replace")
    fields = _fields(value)
    old, new = fields.get(1, [None])[0], fields.get(2, [None])[0]
    if new is not None and fields.get(4):  # a rename: the new entry lives under the new parent
        path = str(PurePosixPath(fields[4][0].decode(errors="replace")) / _fields(new).get(1, [b""])[0].decode())
    root = buckets_dir.rstrip("/") + "/"
    if not path.startswith(root):
        return []
    bucket, _, object_key = path[len(root) :].partition("/")
    if not object_key or "/.uploads/" in f"/{object_key}":  # multipart parts in progress
        return []
    entry = _fields(new if new is not None else old or b"")
    if entry.get(2, [0])[0]:  # a directory
        return []
    attributes = _fields(entry.get(4, [b""])[0])
    size, mtime = attributes.get(1, [0])[0], attributes.get(2, [0])[0]
    at = datetime.fromtimestamp(mtime, UTC) if mtime else datetime.now(UTC)
    if new is not None:
        return [ObjectEvent("created", bucket, object_key, f"{size}:{mtime}", at)]
    if old is not None:
        return [ObjectEvent("removed", bucket, object_key, f"{size}:{mtime}", datetime.now(UTC))]
    return []


def route_of(event: ObjectEvent, routes: list[Route]) -> Route | None:
    parts = event.key.split("/")
    for route in routes:
        prefix = [p for p in route.prefix.strip("/").split("/") if p]
        if route.bucket == event.bucket and parts[: len(prefix)] == prefix and len(parts) > len(prefix):
            return route
    return None


class Notifications:
    def __init__(self, settings: NotificationSettings) -> None:
        self.settings = settings

    def events(self, received: Received[NotificationRecord]) -> list[ObjectEvent]:
        value = received.value.value
        if value.lstrip()[:1] == b"{":
            return parse_s3_event(value)
        return parse_filer_event(received.raw.key(), value, self.settings.filer_buckets_dir)

    def handle(self, batch: list[Received[NotificationRecord]]) -> list[Result]:
        results: list[Result] = []
        for received in batch:
            for event in self.events(received):  # Unreadable: the processor dead-letters this record
                route = route_of(event, self.settings.routes)
                if route is None or PurePosixPath(event.key).suffix.lower() not in VIDEO_SUFFIXES:
                    continue
                uri = f"s3://{event.bucket}/{event.key}"
                video_id = video_id_for(route.tenant, uri)
                identity = f"{route.tenant}\n{uri}\n{event.kind}\n{event.identity}"
                event_id = "n" + hashlib.sha256(identity.encode()).hexdigest()[:40]
                message: VideoUploaded | VideoDeleted
                try:
                    if event.kind == "created":
                        # admission is the decoder's here: the routes name the buckets it reads
                        body = Registration(uri=uri, creator=route.creator, title=PurePosixPath(event.key).stem[:200])
                        message = upload_of(route.tenant, body, None, event_id).model_copy(
                            update={"uploaded_at": event.at}
                        )
                        topic = Topics.UPLOADED
                    else:
                        message = VideoDeleted(
                            event_id=event_id, video_id=video_id, tenant=route.tenant, deleted_at=event.at
                        )
                        topic = Topics.DELETED
                except ValidationError as exc:  # e.g. a key past the URI's byte limit
                    raise Unusable(f"s3://{event.bucket}/{event.key[:200]}: {exc.errors()[0]['msg']}") from exc
                results.append(Outgoing(topic, message, video_id, received, unique=event_id))
        return results


def build(settings: NotificationSettings) -> TransactionalProcessor[NotificationRecord]:
    ensure_topics(settings.common, extra=(settings.topic,))  # the object store may not have written yet
    config = ProcessorConfig(
        service="notifications",
        group_id=settings.group_id,
        input_topic=settings.topic,
        max_batch=100,
        max_wait_s=0.2,
        handle_timeout_s=60.0,
        **settings.common.processor_fields(),
    )
    return TransactionalProcessor(settings.common, config, NotificationRecord, Notifications(settings).handle)


if __name__ == "__main__":
    from services.common.runner import serve

    serve("notifications", NotificationSettings(), build)
