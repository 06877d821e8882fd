"""Outcome records read as webhook events (pure): which event a record is, for which tenant, and the exact
bytes every endpoint receives (`{"type", "timestamp", "data"}`, Standard Webhooks' payload shape).

The `webhook-id` derives from the event's identity (type, video, the upload or delete event id), never from
the record: the enricher publishes status records at least once and this consumer may read a record again
after a crash, and every copy of one event carries the same id, which receivers deduplicate on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.common.messages import Topics, VideoDuplicates, VideoQc, VideoStatus, WebhookEventType

TOPICS = (Topics.STATUS, Topics.DUPLICATES, Topics.QC)
STAGE_EVENTS: dict[str, WebhookEventType] = {
    "indexed": "video.indexed",
    "failed": "video.failed",
    "deleted": "video.deleted",
}


@dataclass(frozen=True)
class Event:
    type: WebhookEventType
    webhook_id: str
    tenant: str
    video_id: str
    body: bytes  # the JSON payload: exactly what is signed and sent


def webhook_id(event_type: str, video_id: str, event_id: str) -> str:
    return "msg_" + hashlib.sha256(f"{event_type}\n{video_id}\n{event_id}".encode()).hexdigest()[:32]


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z") if when is not None else None


def _event(
    event_type: WebhookEventType, tenant: str, video_id: str, event_id: str, at: datetime, data: dict[str, Any]
) -> Event | None:
    if not tenant:
        return None  # an outcome that names no tenant has no endpoints to go to
    payload = {
        "type": event_type,
        "timestamp": _iso(at),
        "data": {"video_id": video_id, "event_id": event_id, **data},
    }
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Event(event_type, webhook_id(event_type, video_id, event_id), tenant, video_id, body)


def of_status(status: VideoStatus) -> Event | None:
    """indexed, failed (with the reason) and deleted; the stages in between are no outcome."""
    event_type = STAGE_EVENTS.get(status.stage)
    if event_type is None:
        return None
    if event_type == "video.indexed":
        data: dict[str, Any] = {"segment_count": status.segment_count, "uploaded_at": _iso(status.uploaded_at)}
    elif event_type == "video.failed":
        data = {
            "reason": status.reason,
            "detail": status.detail,
            "service": status.service,
            "uploaded_at": _iso(status.uploaded_at),
        }
    else:  # the status of a delete is dated at the delete
        data = {"deleted_at": _iso(status.uploaded_at)}
    return _event(event_type, status.tenant, status.video_id, status.event_id, status.updated_at, data)


def of_duplicates(found: VideoDuplicates) -> Event | None:
    """Only a verdict that found something: a video unlike the catalogue is no event."""
    if not found.matches:
        return None
    data = {
        "collection": found.collection,
        "model_version": found.model_version,
        "matches": [m.model_dump(mode="json") for m in found.matches],
    }
    return _event("video.duplicate", found.tenant, found.video_id, found.event_id, found.checked_at, data)


def of_qc(qc: VideoQc) -> Event | None:
    data = {
        "verdict": qc.verdict,
        "checks": list(qc.checks),
        "flags": [f.model_dump(mode="json") for f in qc.flags],
        "collection": qc.collection,
        "model_version": qc.model_version,
    }
    return _event("video.qc", qc.tenant, qc.video_id, qc.event_id, qc.checked_at, data)


def event_of(topic: str, value: bytes | None) -> Event | None:
    """The event an outcome record stands for, or None; a record that does not parse raises ValueError."""
    if value is None:
        return None  # a tombstone of a compacted topic
    if topic == Topics.STATUS:
        return of_status(VideoStatus.model_validate_json(value))
    if topic == Topics.DUPLICATES:
        return of_duplicates(VideoDuplicates.model_validate_json(value))
    if topic == Topics.QC:
        return of_qc(VideoQc.model_validate_json(value))
    raise ValueError(f"not an outcome topic: {topic}")
