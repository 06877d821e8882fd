"""Turn a source plus business metadata into a `videos.uploaded` event: the one function every door uses.

The video id derives from the tenant and the canonical URI, so registering the same source twice addresses
the same video (its rows are rewritten, not duplicated), two tenants registering one URI get two isolated
videos, and each registration gets its own event id. The source is admitted here (what the decoder would
refuse before reading a byte is refused at the door, with the decoder's reason).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from services.common.errors import PermanentError
from services.common.messages import VideoUploaded, video_id_for
from services.intake.models import Registration
from services.media.errors import DecodeError
from services.media.settings import MediaSettings
from services.media.sources import SourcePolicy, admit

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ogv", ".ogg", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp"}
)


def discover(paths: Iterable[Path]) -> list[Path]:
    """Files as given, and the video files (by suffix) inside given folders, sorted for stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES))
        else:
            found.append(path)
    return found


def canonical_uri(source: str | Path) -> str:
    if isinstance(source, Path) or "://" not in source:
        return Path(source).resolve().as_uri()
    return source


def event_id_for(tenant: str, idempotency_key: str | None) -> str | None:
    """A keyed request's event id: the same for every retry of it, distinct per tenant."""
    if not idempotency_key:
        return None
    return "i" + hashlib.sha256(f"{tenant}\n{idempotency_key}".encode()).hexdigest()[:40]


def upload_of(
    tenant: str, registration: Registration, policy: SourcePolicy | None, event_id: str | None = None
) -> VideoUploaded:
    """The event for this registration; a source the policy refuses is a PermanentError with the decoder's
    reason (None: admission is left to the decoder, for the CLI's own files)."""
    if policy is not None:
        try:
            admit(registration.uri, policy)
        except DecodeError as exc:
            raise PermanentError(exc.detail, reason=exc.reason) from exc
    fields: dict[str, Any] = {"event_id": event_id} if event_id else {}
    return VideoUploaded(
        video_id=video_id_for(tenant, registration.uri),
        uri=registration.uri,
        creator=registration.creator,
        tenant=tenant,
        title=registration.title,
        tags=registration.tags,
        metadata=registration.metadata,
        **fields,
    )


def register(
    source: str | Path,
    creator: str = "",
    tenant: str = "default",
    title: str = "",
    tags: list[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    policy: SourcePolicy | None = None,
) -> VideoUploaded:
    """A local path or URI as an event (the CLI, tests and benches): the title defaults to the file's name."""
    uri = canonical_uri(source)
    name = title or Path(uri.rsplit("/", 1)[-1]).stem
    body = Registration(uri=uri, creator=creator, title=name, tags=tags or [], metadata=dict(metadata or {}))
    return upload_of(tenant, body, policy)


def default_policy() -> SourcePolicy:
    return MediaSettings().source_policy()
