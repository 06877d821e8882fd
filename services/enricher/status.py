"""Each stage's event, read as a `VideoStatus`: the pure half of the enricher's status projection.

The enricher turns the pipeline's own events (`videos.uploaded`, `videos.probed`, the indexer's acks and
`videos.indexed`, dead letters) into one status record per video on the compacted `videos.status` topic,
which the gateway reads to answer "where is my upload?". A dead letter carries the original message, so its
upload (event id, tenant) is read back from the payload when it can be.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from services.common.messages import (
    DeadLetter,
    SegmentIndexed,
    Topics,
    UploadStamped,
    VideoIndexed,
    VideoProbed,
    VideoRemoved,
    VideoStatus,
    VideoUploaded,
)


def registered(up: VideoUploaded) -> VideoStatus:
    return VideoStatus.registered(up)


def probed(p: VideoProbed) -> VideoStatus:
    return VideoStatus(
        event_id=p.event_id,
        video_id=p.video_id,
        tenant=p.tenant,
        stage="probed",
        segment_count=p.segment_count,
        uploaded_at=p.uploaded_at,
        service="decoder",
    )


def indexing(ack: SegmentIndexed, segments_indexed: int) -> VideoStatus:
    return VideoStatus(
        event_id=ack.event_id,
        video_id=ack.video_id,
        tenant=ack.tenant,
        stage="indexing",
        segment_count=ack.segment_count,
        segments_indexed=segments_indexed,
        uploaded_at=ack.uploaded_at,
        service="indexer",
    )


def indexed(done: VideoIndexed) -> VideoStatus:
    return VideoStatus(
        event_id=done.event_id,
        video_id=done.video_id,
        tenant=done.tenant,
        stage="indexed",
        segment_count=done.segment_count,
        segments_indexed=done.segment_count,
        uploaded_at=done.uploaded_at,
        service="indexer",
    )


def deleted(removed: VideoRemoved) -> VideoStatus:
    """Dated at the delete, so it supersedes every upload registered before it and none after it."""
    return VideoStatus(
        event_id=removed.event_id,
        video_id=removed.video_id,
        tenant=removed.tenant,
        stage="deleted",
        detail=f"removed from {len(removed.collections)} collections",
        uploaded_at=removed.deleted_at,
        service="indexer",
    )


def failed(letter: DeadLetter) -> VideoStatus | None:
    """None when the payload names no upload (a malformed message: there is no upload to report on), or
    when a consumer of `videos.indexed` (near-duplicates, QC) gave up: the upload is indexed and searchable
    all the same, its status stays."""
    if letter.source_topic == Topics.INDEXED:
        return None
    try:
        payload = json.loads(letter.payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict) or not payload.get("event_id") or not payload.get("video_id"):
        return None
    try:
        return VideoStatus(
            event_id=str(payload["event_id"]),
            video_id=str(payload["video_id"]),
            stage="failed",
            reason=letter.reason,
            detail=letter.detail[:4000],
            service=letter.service,
            **UploadStamped.read(payload),
        )
    except ValueError:
        return None


_PROJECTIONS: dict[str, tuple[type[BaseModel], Callable[[Any], VideoStatus | None]]] = {
    Topics.UPLOADED: (VideoUploaded, registered),
    Topics.PROBED: (VideoProbed, probed),
    Topics.INDEXED: (VideoIndexed, indexed),
    Topics.REMOVED: (VideoRemoved, deleted),
    Topics.DEAD_LETTER: (DeadLetter, failed),
}
OBSERVED = tuple(_PROJECTIONS)  # the topics whose events the projection reads (the acks are read apart)


def project(topic: str, value: bytes | None) -> VideoStatus | None:
    """The status an observed topic's event stands for; None for one that cannot be read (its own stage
    dead-letters it: the projection does not do it twice) or that names no upload."""
    model, to_status = _PROJECTIONS[topic]
    try:
        return to_status(model.model_validate_json(value or b""))
    except ValidationError:
        return None
