"""Turn a local path or URI plus business metadata into a `videos.uploaded` event.

The video id derives from the tenant and the canonical URI, so registering the same source twice addresses
the same video (its rows are rewritten, not duplicated), two tenants registering one URI get two isolated
videos, and each registration gets its own event id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from services.common.messages import (
    VideoUploaded,
    video_id_for,
)

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


def register(
    source: str | Path,
    creator: str = "",
    tenant: str = "default",
    title: str = "",
    tags: list[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> VideoUploaded:
    uri = canonical_uri(source)
    name = title or Path(uri.rsplit("/", 1)[-1]).stem
    return VideoUploaded(
        video_id=video_id_for(tenant, uri),
        uri=uri,
        creator=creator,
        tenant=tenant,
        title=name,
        tags=tags or [],
        metadata=dict(metadata or {}),
    )
