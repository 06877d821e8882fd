"""Versioned message contracts, one model per topic; `schemas/` holds their committed JSON Schemas.

Every message is keyed by `video_id` so one video's events stay ordered on one partition, and every
message carries the `event_id` of the upload that caused it, so a re-upload is tracked as its own run.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
)

MAX_TAGS = 8
MAX_FACES = 32  # per segment (over its keyframes)
FINGERPRINTS_BYTES = 4096  # a segment's fingerprints field: the Milvus column's capacity (ASCII)


def _utf8_at_most(limit: int) -> AfterValidator:
    """Milvus servers size VARCHAR columns in UTF-8 bytes: a 400-character CJK title is 1,200 bytes."""

    def check(value: str) -> str:
        if len(value.encode()) > limit:
            raise ValueError(f"{len(value.encode())} UTF-8 bytes, at most {limit} allowed")
        return value

    return AfterValidator(check)


EventId = Annotated[str, Field(min_length=1, max_length=64), _utf8_at_most(64)]
Uri = Annotated[str, Field(min_length=1, max_length=4096), _utf8_at_most(4096)]
Creator = Annotated[str, Field(max_length=256), _utf8_at_most(256)]
Title = Annotated[str, Field(max_length=1024), _utf8_at_most(1024)]

# A tenant, as an API key or a notification route names it: the one contract of every tenant field (it is a
# Milvus partition-key value and part of video ids and webhook record keys)
TenantId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
# the same on records one stage fills in from another's: "" where an older producer did not carry it (unknown)
TenantIdOrUnknown = Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")]


MAX_DEAD_LETTER_PAYLOAD = 64 * 1024
MAX_DEAD_LETTER_DETAIL = 4000
Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\w .:/-]+$"), _utf8_at_most(64)]

# free metadata: a flat map the uploader owns. Keys are identifiers (they become JSON paths in filters, so
# they are never free text); values are scalars, strict so "3" and 3 stay distinct and filter as given
MAX_METADATA_KEYS = 16
MAX_METADATA_BYTES = 4096
MetaKey = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]
MetaValue = Annotated[
    StrictBool | StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)] | Annotated[str, Field(max_length=512)],
    Field(union_mode="left_to_right"),
]


def _metadata_size(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is {size} bytes of JSON, at most {MAX_METADATA_BYTES} allowed")
    return value


Metadata = Annotated[dict[MetaKey, MetaValue], Field(max_length=MAX_METADATA_KEYS), AfterValidator(_metadata_size)]
# a JSON merge patch (RFC 7386) of it: null removes a key
MetadataPatch = Annotated[
    dict[MetaKey, MetaValue | None], Field(max_length=MAX_METADATA_KEYS), AfterValidator(_metadata_size)
]


def merge_metadata(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in {**current, **patch}.items() if v is not None}


def video_id_for(tenant: str, uri: str) -> str:
    """A video's id: one per tenant and source, so two tenants registering one URI get two videos."""
    return "v" + hashlib.sha256(f"{tenant}\n{uri}".encode()).hexdigest()[:24]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of every topic's payload. Unknown fields are ignored so newer producers don't break readers."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: int = 1
    event_id: str = Field(description="id of the upload event this message descends from")
    video_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")


class VideoInfo(BaseModel):
    """Business and technical metadata denormalised onto segment/embedding messages for the indexer."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    uri: str
    creator: str = ""
    tenant: TenantId = "default"
    title: str = ""
    uploaded_at: AwareDatetime
    width: int = 0
    height: int = 0
    duration_s: float = 0.0
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    metadata: Metadata = Field(default_factory=dict)

    @classmethod
    def of(cls, upload: VideoUploaded, width: int, height: int, duration_s: float) -> VideoInfo:
        """The upload's own fields, as registered, with the picture's size and length once it is decoded."""
        return cls.model_validate({**upload.model_dump(), "width": width, "height": height, "duration_s": duration_s})

    def stamp(self) -> dict[str, Any]:
        """The fields of `UploadStamped`, for the flat messages made from a segment or an embedding."""
        return {"tenant": self.tenant, "uploaded_at": self.uploaded_at}


class UploadStamped(Message):
    """A message naming its upload's tenant and registration time at the top level (`videos.uploaded` does
    so by its own fields; segments and embeddings in `video`, a `VideoInfo`). Older producers left them out:
    "" and None stand for unknown."""

    tenant: TenantIdOrUnknown = Field(default="", description="the upload's tenant (status is tenant-scoped)")
    uploaded_at: AwareDatetime | None = Field(default=None, description="when the upload was registered")

    @staticmethod
    def read(payload: dict[str, Any]) -> dict[str, Any]:
        """Tenant and registration time from any topic's message, as JSON (a dead letter's payload, which may
        not validate): where each model carries them, flat or in `video`; "" and None where it does not."""
        nested = payload.get("video")
        video: dict[str, Any] = nested if isinstance(nested, dict) else {}
        return {
            "tenant": str(payload.get("tenant") or video.get("tenant") or ""),
            "uploaded_at": payload.get("uploaded_at") or video.get("uploaded_at"),
        }


class VideoUploaded(Message):
    """An upload was registered: where the bytes are and who owns them."""

    schema_version: Literal[1] = 1
    event_id: EventId = Field(default_factory=lambda: uuid.uuid4().hex)
    uri: Uri
    creator: Creator = ""
    tenant: TenantId = "default"
    title: Title = ""
    uploaded_at: AwareDatetime = Field(default_factory=utcnow)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS, description="filterable labels")
    metadata: Metadata = Field(default_factory=dict, description="free key/values, filterable by equality")


class VideoProbed(UploadStamped):
    """Technical metadata of a decoded video (the decoder's `Probe`) and how many segments it was cut into."""

    schema_version: Literal[1] = 1
    container: str
    codec: str
    width: int
    height: int
    fps: float | None = None
    duration_s: float
    bitrate: int | None = None
    has_audio: bool = False
    frame_count: int | None = None
    segment_count: int
    profile: str | None = None
    pixel_format: str | None = None
    rotation: int = Field(default=0, description="degrees clockwise applied for display; width/height are after it")
    sample_aspect_ratio: str | None = None
    interlaced: bool = False


class Keyframe(BaseModel):
    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    t: float = Field(description="presentation time in seconds from the start of the video")
    jpeg: bytes


class FaceBox(BaseModel):
    """A face found on one of the segment's keyframes."""

    model_config = ConfigDict(frozen=True)

    box: tuple[float, float, float, float] = Field(description="x0, y0, x1, y1 as shares of the picture's sides")
    score: float = Field(description="the detector's certainty (Haar level weight: higher is surer)")
    t: float = Field(description="the keyframe's time, seconds from the start of the video")


class FaceVector(FaceBox):
    vector: list[float] = Field(description="the face crop's embedding, by the segment's model")


class VideoSegment(Message):
    """One segment of a video with its resized JPEG keyframes."""

    schema_version: Literal[1] = 1
    segment_index: int = Field(ge=0)
    segment_count: int = Field(ge=1)
    start_s: float
    end_s: float
    keyframes: list[Keyframe] = Field(min_length=1)
    video: VideoInfo
    fingerprints: str = Field(
        default="",
        max_length=FINGERPRINTS_BYTES,
        description="model-free perceptual hashes of the segment's frames every 0.5 s (services.media.fingerprints)",
    )
    faces: list[FaceBox] = Field(default_factory=list, max_length=MAX_FACES, description="faces on its keyframes")


class ModelRef(BaseModel):
    """Which model made an embedding: a collection only ever holds vectors of one ModelRef."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    dim: int


class SegmentEmbedding(Message):
    model_config = ConfigDict(extra="ignore", frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    schema_version: Literal[1] = 1
    segment_index: int = Field(ge=0)
    segment_count: int = Field(ge=1)
    start_s: float
    end_s: float
    keyframe_times: list[float]
    vector: list[float]
    model: ModelRef
    video: VideoInfo
    thumbnail: bytes = Field(default=b"", description="small JPEG of the segment's middle keyframe, for result pages")
    fingerprints: str = Field(default="", max_length=FINGERPRINTS_BYTES, description="as the segment's, passed on")
    faces: list[FaceVector] = Field(default_factory=list, max_length=MAX_FACES, description="its faces, embedded")
    face_model: ModelRef | None = Field(
        default=None, description="what embedded the faces when not `model` (a face model given by path)"
    )


class BackfillTarget(BaseModel):
    """The model a backfill re-embeds with, and where its weights load from while Triton serves another."""

    model_config = ConfigDict(frozen=True)

    model: ModelRef
    spec: str = Field(max_length=4096, description="a checkpoint path or model name `load_clip` accepts")


BACKFILL_EVENT_PREFIX = "backfill-"  # a backfill's event id (`services.indexer.reindex.backfill_event_id`)


def is_backfill(event_id: str) -> bool:
    """Whether rows written under this event id came from a reindex's backfill, not from an upload."""
    return event_id.startswith(BACKFILL_EVENT_PREFIX)


_EVENT_ID = re.compile(rb'"event_id":"([^"]{1,64})"')


def event_id_of(payload: bytes | None) -> str | None:
    """The event id a serialized message carries, read from its head without parsing it (a dead letter's payload
    may be cut, or not valid at all): None when there is none."""
    found = _EVENT_ID.search((payload or b"")[:512])
    return found.group(1).decode(errors="replace") if found else None


class VideoBackfill(Message):
    """One catalogued video to decode and embed again with `target` (`clipstream reindex`). Its event id is
    the same for the same video version and target, so a republished event rewrites the same rows."""

    schema_version: Literal[1] = 1
    video: VideoInfo
    target: BackfillTarget


class BackfillSegment(VideoSegment):
    """A backfilled video's segment: embedded with `target`, not with the served model."""

    target: BackfillTarget


class SegmentIndexed(UploadStamped):
    """Ack from the indexer: this segment's row is durable in Milvus."""

    schema_version: Literal[1] = 1
    segment_index: int = Field(ge=0)
    segment_count: int = Field(ge=1)
    collection: str
    model_version: str


class VideoIndexed(UploadStamped):
    """All segments of an upload are searchable. Downstream consumers subscribe to this.

    Published by the indexer in the transaction that made the last segment durable: once per upload."""

    schema_version: Literal[1] = 1
    segment_count: int
    collection: str
    model_version: str
    indexed_at: AwareDatetime = Field(default_factory=utcnow)


class DeadLetter(BaseModel):
    """A message a stage could not process, with enough context to inspect and replay it."""

    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    schema_version: Literal[1] = 1
    service: str
    reason: str = Field(description="short machine-readable class, e.g. 'corrupt_video', 'malformed_message'")
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: str | None = None
    payload: bytes = Field(description="the original message value, truncated to 64 KiB")
    failed_at: AwareDatetime = Field(default_factory=utcnow)
    attempts: list[str] = Field(
        default_factory=list, description="each failed attempt of a transient failure: 'time reason: detail'"
    )

    @classmethod
    def of(
        cls,
        service: str,
        reason: str,
        detail: str,
        source: tuple[str, int, int],
        key: bytes | None,
        payload: bytes | None,
        attempts: tuple[str, ...] = (),
    ) -> DeadLetter:
        """The one way to build a dead letter: bounded detail and payload, whatever the caller hands in."""
        topic, partition, offset = source
        return cls(
            service=service,
            reason=reason,
            detail=detail[:MAX_DEAD_LETTER_DETAIL],
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
            key=key.decode(errors="replace") if key else None,
            payload=(payload or b"")[:MAX_DEAD_LETTER_PAYLOAD],
            attempts=list(attempts),
        )


class VideoDeleted(Message):
    """A takedown or privacy request: the video leaves every model's collections, and no late message of
    the deleted upload brings it back (an upload registered after this is a new life of the video)."""

    schema_version: Literal[1] = 1
    event_id: EventId = Field(default_factory=lambda: uuid.uuid4().hex)
    tenant: TenantId
    deleted_at: AwareDatetime = Field(default_factory=utcnow)


class VideoUpdated(Message):
    """Business metadata corrected in place: rows rewritten with their vectors, nothing re-embedded."""

    schema_version: Literal[1] = 1
    event_id: EventId = Field(default_factory=lambda: uuid.uuid4().hex)
    tenant: TenantId
    title: Title | None = None
    creator: Creator | None = None
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    metadata: MetadataPatch | None = Field(default=None, description="merged into the free metadata; null removes")
    updated_at: AwareDatetime = Field(default_factory=utcnow)


class VideoRemoved(Message):
    """Downstream: the indexer removed the video's rows from these collections (published once per delete)."""

    schema_version: Literal[1] = 1
    tenant: TenantId
    deleted_at: AwareDatetime
    collections: list[str] = Field(default_factory=list)
    removed_at: AwareDatetime = Field(default_factory=utcnow)


DuplicateKind = Literal["duplicate", "contains", "contained_in"]
# a verdict read from the other video's side
OPPOSITE_KIND: dict[str, DuplicateKind] = {
    "duplicate": "duplicate",
    "contains": "contained_in",
    "contained_in": "contains",
}


class DuplicateMatch(BaseModel):
    """One catalogued video the checked video duplicates, contains or is contained in, with the evidence."""

    model_config = ConfigDict(frozen=True)

    other_video_id: str
    kind: DuplicateKind = Field(description="from the checked video's side")
    score: float = Field(description="duration-weighted mean cosine of the matched segments")
    start_s: float = Field(description="matched range in the checked video")
    end_s: float
    other_start_s: float = Field(description="matched range in the other video")
    other_end_s: float
    segments: int = Field(description="segments in the ordered run that matched")
    coverage: float = Field(description="share of the checked video's informative duration matched")
    other_coverage: float


class VideoDuplicates(Message):
    """The near-duplicate stage's verdict on one indexed upload (published once per upload; may be empty)."""

    schema_version: Literal[1] = 1
    tenant: TenantIdOrUnknown
    collection: str
    model_version: str
    segment_threshold: float
    matches: list[DuplicateMatch] = Field(default_factory=list)
    checked_at: AwareDatetime = Field(default_factory=utcnow)


class ScreenText(BaseModel):
    """One line of text read on a keyframe."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(min_length=1, max_length=256)
    box: tuple[float, float, float, float] = Field(description="x0, y0, x1, y1 as shares of the picture's sides")
    confidence: float = Field(ge=0, le=1)
    t: float = Field(description="the keyframe's time, seconds from the start of the video")


class SegmentText(UploadStamped):
    """The words read on a segment's keyframes (OCR): published by the text stage once per segment, with or
    without text, after they are stored (text and its sentence embedding) for search."""

    schema_version: Literal[1] = 1
    segment_index: int = Field(ge=0)
    segment_count: int = Field(ge=1)
    start_s: float
    end_s: float
    lines: list[ScreenText] = Field(default_factory=list, max_length=64)
    encoder: str = Field(description="the sentence encoder that embedded the text (names its collection)")


QcCheck = Literal["prompt_alignment", "style", "temporal", "character"]
QcVerdict = Literal["pass", "flagged", "nothing_to_check"]
# the free-metadata keys a generated video's QC reads: what it was asked to show, and what it should look like
QC_PROMPT_KEY = "prompt"
QC_REFERENCES_KEY = "references"  # image URIs, separated by white space (each admitted like a video source)


class QcFlag(BaseModel):
    """One reason a video was flagged, with the time range that shows it."""

    model_config = ConfigDict(frozen=True)

    check: QcCheck
    start_s: float
    end_s: float
    score: float = Field(description="the worst value in the range: cosine for prompt/temporal, z for style")
    threshold: float
    reason: str


class QcSegment(BaseModel):
    """One segment's scores (absent where that check did not run)."""

    model_config = ConfigDict(frozen=True)

    segment_index: int
    start_s: float
    end_s: float
    alignment: float | None = Field(default=None, description="cosine to the prompt")
    deviation: float | None = Field(
        default=None, description="distance to the references' centroid in units of their own spread (a z-score)"
    )
    continuity: float | None = Field(default=None, description="cosine to the previous adjacent segment")
    character: float | None = Field(default=None, description="its main face's best cosine to the reference faces")


class VideoQc(Message):
    """The QC stage's verdict on one indexed upload that carries a prompt and/or references (once per upload)."""

    schema_version: Literal[1] = 1
    tenant: TenantIdOrUnknown
    collection: str
    model_version: str
    verdict: QcVerdict
    checks: list[QcCheck] = Field(default_factory=list, description="the checks that ran")
    flags: list[QcFlag] = Field(default_factory=list)
    segments: list[QcSegment] = Field(default_factory=list)
    checked_at: AwareDatetime = Field(default_factory=utcnow)


Stage = Literal["registered", "probed", "indexing", "indexed", "failed", "deleted"]
STAGE_RANK: dict[str, int] = {"registered": 0, "probed": 1, "indexing": 2, "indexed": 3, "failed": 3, "deleted": 4}


class VideoStatus(Message):
    """Where one video's newest upload is: the compacted `videos.status` topic holds one per video.

    Published by the enricher from the stages' own events (at least once, in any order across topics), so a
    reader merges with `supersedes`: a newer upload wins, and within one upload a stage never goes back."""

    schema_version: Literal[1] = 1
    tenant: TenantIdOrUnknown = ""
    stage: Stage
    reason: str = Field(default="", description="dead-letter reason when failed")
    detail: str = Field(default="", max_length=4000)
    service: str = Field(default="", description="the stage that reported it")
    segment_count: int = 0
    segments_indexed: int = 0
    uploaded_at: AwareDatetime | None = None
    updated_at: AwareDatetime = Field(default_factory=utcnow)

    @classmethod
    def registered(cls, up: VideoUploaded) -> VideoStatus:
        return cls(
            event_id=up.event_id, video_id=up.video_id, tenant=up.tenant, stage="registered", uploaded_at=up.uploaded_at
        )

    def supersedes(self, other: VideoStatus) -> bool:
        if self.event_id != other.event_id:
            if self.uploaded_at is None or other.uploaded_at is None:
                return self.updated_at >= other.updated_at
            return self.uploaded_at > other.uploaded_at
        if STAGE_RANK[self.stage] != STAGE_RANK[other.stage]:
            return STAGE_RANK[self.stage] > STAGE_RANK[other.stage]
        return self.segments_indexed > other.segments_indexed or (
            self.stage == other.stage == "failed" and self.updated_at > other.updated_at
        )

    def merged(self, other: VideoStatus | None) -> VideoStatus:
        """This record with what an earlier record of the same upload knew and this one does not."""
        if other is None or other.event_id != self.event_id:
            return self
        return self.model_copy(
            update={
                "tenant": self.tenant or other.tenant,
                "uploaded_at": self.uploaded_at or other.uploaded_at,
                "segment_count": self.segment_count or other.segment_count,
                "segments_indexed": max(self.segments_indexed, other.segments_indexed),
            }
        )


class RegistrationRecord(Message):
    """A registration made with an Idempotency-Key, and the answer it got: replayed to every retry of the key
    for the idempotency window (the topic is compacted by event id and expires with the window)."""

    schema_version: Literal[1] = 1
    tenant: TenantId
    uri: Uri
    fingerprint: str = Field(max_length=64, description="sha256 of the request's canonical JSON")
    registered_at: AwareDatetime = Field(default_factory=utcnow)


WebhookEventType = Literal["video.indexed", "video.failed", "video.deleted", "video.duplicate", "video.qc"]
WEBHOOK_EVENT_TYPES: tuple[WebhookEventType, ...] = get_args(WebhookEventType)


class WebhookEndpoint(BaseModel):
    """A tenant's webhook receiver. The compacted `webhooks.endpoints` topic holds one record per endpoint, keyed
    `<tenant>/<endpoint id>`; a tombstone (null value) deletes it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = 1
    endpoint_id: str = Field(pattern=r"^ep_[0-9a-f]{24}$", description="time-ordered: ids sort by creation")
    tenant: TenantId
    url: str = Field(min_length=1, max_length=2048, description="under CLIPSTREAM_WEBHOOKS_ALLOWED_URL_PREFIXES")
    event_types: list[WebhookEventType] = Field(min_length=1, max_length=len(WEBHOOK_EVENT_TYPES))
    description: str = Field(default="", max_length=256)
    secret: str = Field(repr=False, description="the signing secret, encrypted (Fernet) with the webhooks key")
    created_at: AwareDatetime = Field(description="events recorded before this are not delivered to it")


class Topics:
    UPLOADED = "videos.uploaded"
    REGISTRATIONS = "videos.registrations"
    PROBED = "videos.probed"
    SEGMENTS = "videos.segments"
    EMBEDDINGS = "videos.embeddings"
    SEGMENTS_INDEXED = "videos.segments.indexed"
    INDEXED = "videos.indexed"
    DEAD_LETTER = "videos.deadletter"
    STATUS = "videos.status"
    DELETED = "videos.deleted"
    UPDATED = "videos.updated"
    REMOVED = "videos.removed"
    DUPLICATES = "videos.duplicates"
    QC = "videos.qc"
    TEXT = "videos.text"
    TEXT_DEAD_LETTER = "videos.text.deadletter"  # the text stage's: an upload's outcome never depends on it
    WEBHOOK_ENDPOINTS = "webhooks.endpoints"
    WEBHOOK_DEAD_LETTER = "webhooks.deadletter"  # not videos.deadletter: the status projection reads that one
    # `clipstream reindex`: the same stages in their own groups; nothing downstream of ingest reads these
    BACKFILL = "videos.backfill"
    BACKFILL_SEGMENTS = "videos.backfill.segments"
    BACKFILL_EMBEDDINGS = "videos.backfill.embeddings"
    BACKFILL_INDEXED = "videos.backfill.indexed"
    BACKFILL_DEAD_LETTER = "videos.backfill.deadletter"


TOPIC_MODELS: dict[str, type[BaseModel]] = {
    Topics.UPLOADED: VideoUploaded,
    Topics.REGISTRATIONS: RegistrationRecord,
    Topics.PROBED: VideoProbed,
    Topics.SEGMENTS: VideoSegment,
    Topics.EMBEDDINGS: SegmentEmbedding,
    Topics.SEGMENTS_INDEXED: SegmentIndexed,
    Topics.INDEXED: VideoIndexed,
    Topics.DEAD_LETTER: DeadLetter,
    Topics.STATUS: VideoStatus,
    Topics.DELETED: VideoDeleted,
    Topics.UPDATED: VideoUpdated,
    Topics.REMOVED: VideoRemoved,
    Topics.DUPLICATES: VideoDuplicates,
    Topics.QC: VideoQc,
    Topics.TEXT: SegmentText,
    Topics.TEXT_DEAD_LETTER: DeadLetter,
    Topics.WEBHOOK_ENDPOINTS: WebhookEndpoint,
    Topics.WEBHOOK_DEAD_LETTER: DeadLetter,
    Topics.BACKFILL: VideoBackfill,
    Topics.BACKFILL_SEGMENTS: BackfillSegment,
    Topics.BACKFILL_EMBEDDINGS: SegmentEmbedding,
    Topics.BACKFILL_INDEXED: VideoIndexed,
    Topics.BACKFILL_DEAD_LETTER: DeadLetter,
}
COMPACTED_TOPICS = frozenset({Topics.STATUS, Topics.REGISTRATIONS, Topics.WEBHOOK_ENDPOINTS})
# compacted topics that also forget: a keyed registration is replayed for this long (a retry window, as
# payment APIs keep theirs for 24 h)
RETENTION_MS = {Topics.REGISTRATIONS: 24 * 3600 * 1000}
