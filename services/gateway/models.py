"""The gateway's answers and bodies besides registration's own (services/intake/models.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.common.messages import MAX_TAGS, Creator, MetadataPatch, Tag, Title, VideoStatus
from services.intake.models import Registered, Registration

MAX_BATCH = 100


class VideoPatch(BaseModel):
    """Fields to correct; the others stay as they are."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    creator: Creator | None = None
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    metadata: MetadataPatch | None = Field(
        default=None, description="merged into the video's free metadata (JSON merge patch: null removes a key)"
    )


class Accepted(BaseModel):
    event_id: str
    video_id: str
    status_url: str


class Status(BaseModel):
    event_id: str
    video_id: str
    stage: str
    reason: str = ""
    detail: str = ""
    segment_count: int = 0
    segments_indexed: int = 0
    superseded_by: str | None = Field(default=None, description="a newer upload of the same video")
    uploaded_at: str | None = None
    updated_at: str

    @classmethod
    def of(cls, status: VideoStatus, event_id: str | None = None) -> Status:
        """`event_id`: the upload asked about, when it may have been superseded by a newer one."""
        superseded = event_id is not None and status.event_id != event_id and status.stage != "deleted"
        return cls(
            event_id=event_id or status.event_id,
            video_id=status.video_id,
            stage="superseded" if superseded else status.stage,
            reason=status.reason,
            detail=status.detail,
            segment_count=status.segment_count,
            segments_indexed=status.segments_indexed,
            superseded_by=status.event_id if superseded else None,
            uploaded_at=status.uploaded_at.isoformat() if status.uploaded_at else None,
            updated_at=status.updated_at.isoformat(),
        )


class Page(BaseModel):
    items: list[Status]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: this was the last")


class BatchItem(Registration):
    idempotency_key: str | None = Field(default=None, max_length=200, description="this item's own key")


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH)


class ItemResult(BaseModel):
    index: int
    status: int = Field(description="the HTTP status this item alone would have got (202, 4xx, 503)")
    registered: Registered | None = None
    reason: str | None = None
    detail: str | None = None


class BatchResult(BaseModel):
    results: list[ItemResult]
