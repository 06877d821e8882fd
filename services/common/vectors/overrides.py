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

from services.common.errors import PermanentError
from services.common.messages import MAX_TAGS, SegmentEmbedding, merge_metadata

PATCHABLE = ("title", "creator", "tags", "metadata")
MAX_PATCH_BYTES = 8192  # the overrides collection's column


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
        patch = json.dumps(self.patch, ensure_ascii=False)
        if len(patch.encode()) > MAX_PATCH_BYTES:
            raise PermanentError(
                f"the video's accumulated patch is {len(patch.encode())} bytes, over {MAX_PATCH_BYTES}",
                reason="patch_too_large",
            )
        return {
            "pk": self.video_id,
            "tenant": self.tenant,
            "deleted_at": self.deleted_at,
            "patched_at": self.patched_at,
            "patch": patch,
            "placeholder": [0.0, 0.0],
        }

    def deleted(self, at_ms: int) -> Override:
        return replace(self, deleted_at=at_ms)

    def patched(self, patch: dict[str, Any], at_ms: int) -> Override:
        """This override with a newer patch folded in: fields replace, metadata merges key by key (a null
        stays, as the removal later writes must apply too)."""
        combined = {**self.patch, **patch}
        if "metadata" in self.patch and "metadata" in patch:
            combined["metadata"] = {**self.patch["metadata"], **patch["metadata"]}
        return replace(self, patch=combined, patched_at=max(at_ms, self.patched_at))

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
    if "metadata" in update:
        update["metadata"] = merge_metadata(e.video.metadata, update["metadata"])
    return e.model_copy(update={"video": e.video.model_copy(update=update)})


def patched_fields(patch: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """The columns of `row` a patch rewrites."""
    out: dict[str, Any] = {k: patch[k] for k in ("title", "creator") if k in patch}
    if "metadata" in patch:
        out["metadata"] = merge_metadata(row.get("metadata") or {}, patch["metadata"])
    if "tags" in patch:
        tags = list(patch["tags"])[:MAX_TAGS]
        out |= {f"tag{i}": tags[i] if i < len(tags) else "" for i in range(MAX_TAGS)}
    return out
