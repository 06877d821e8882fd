"""Deletes and metadata patches of a video, recorded once for every model's collections.

A delete or a patch arrives on its own topic while the video's segments may still be in flight; the
override row is what makes the order not matter: every write reads it, so a late embedding of a deleted
upload removes itself and a late embedding of a patched video is written patched. An upload registered
*after* the delete (a re-upload) is a new video life and is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.common.messages import MAX_TAGS, SegmentEmbedding

PATCHABLE = ("title", "creator", "tags")


def epoch_ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


@dataclass(frozen=True)
class Override:
    video_id: str
    tenant: str
    deleted_at: int = 0  # epoch ms of the delete; 0: not deleted
    patched_at: int = 0
    patch: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Override:
        return cls(
            video_id=row["pk"],
            tenant=row["tenant"],
            deleted_at=int(row["deleted_at"]),
            patched_at=int(row["patched_at"]),
            patch=json.loads(row["patch"] or "{}"),
        )

    def to_row(self) -> dict[str, Any]:
        return {
            "pk": self.video_id,
            "tenant": self.tenant,
            "deleted_at": self.deleted_at,
            "patched_at": self.patched_at,
            "patch": json.dumps(self.patch, ensure_ascii=False),
            "placeholder": [0.0, 0.0],
        }

    def deleted(self, at_ms: int) -> Override:
        return replace(self, deleted_at=at_ms)

    def patched(self, patch: dict[str, Any], at_ms: int) -> Override:
        return replace(self, patch=patch, patched_at=at_ms)

    def deletes(self, uploaded_at: datetime) -> bool:
        """An upload registered before (or at) the delete is gone; a later one is a re-upload."""
        return self.deleted_at > 0 and epoch_ms(uploaded_at) <= self.deleted_at


@dataclass(frozen=True)
class Written:
    completed: list[SegmentEmbedding]
    removed: set[str]  # videos whose rows this write did not keep: deleted after their upload


def apply_patch(e: SegmentEmbedding, override: Override | None) -> SegmentEmbedding:
    """The embedding with a patch made after its upload applied to its metadata (a later upload's own
    metadata wins: the uploader registered it anew)."""
    if override is None or not override.patch or override.patched_at < epoch_ms(e.video.uploaded_at):
        return e
    update = {k: v for k, v in override.patch.items() if k in PATCHABLE}
    return e.model_copy(update={"video": e.video.model_copy(update=update)})


def patched_fields(patch: dict[str, Any]) -> dict[str, Any]:
    """The row columns a patch rewrites."""
    out: dict[str, Any] = {k: patch[k] for k in ("title", "creator") if k in patch}
    if "tags" in patch:
        tags = list(patch["tags"])[:MAX_TAGS]
        out |= {f"tag{i}": tags[i] if i < len(tags) else "" for i in range(MAX_TAGS)}
    return out
