"""Duplicate groups for search: the near-duplicate stage's verdicts read from either side, and
collapsing a result list to one video per group.

A group is a connected set of videos joined by "duplicate" verdicts (containment joins no group: a
compilation is not a copy of each clip it contains). Groups are found from the verdicts that touch the
videos at hand, so two results join when they are verdicts of each other or of one common video.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from services.common.messages import OPPOSITE_KIND


def seen_from(video_id: str, row: dict[str, Any]) -> dict[str, Any]:
    """A stored verdict as `video_id` sees it: the other video, the kind and ranges from its side."""
    detail = json.loads(row.get("detail") or "{}")
    mine = row["video_id"] == video_id
    return {
        "video_id": row["other_id"] if mine else row["video_id"],
        "kind": row["kind"] if mine else OPPOSITE_KIND[row["kind"]],
        "score": round(float(row["score"]), 6),
        "start_s": detail.get("start_s" if mine else "other_start_s"),
        "end_s": detail.get("end_s" if mine else "other_end_s"),
        "other_start_s": detail.get("other_start_s" if mine else "start_s"),
        "other_end_s": detail.get("other_end_s" if mine else "end_s"),
        "segments": detail.get("segments"),
        "model_version": row.get("model_version"),
    }


def verdicts_of(video_id: str, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One verdict per other video (the newest check wins), best first."""
    newest: dict[str, tuple[int, dict[str, Any]]] = {}
    for row in rows:
        if video_id not in (row["video_id"], row["other_id"]):
            continue
        seen = seen_from(video_id, row)
        at = int(row.get("checked_at") or 0)
        if seen["video_id"] not in newest or at >= newest[seen["video_id"]][0]:
            newest[seen["video_id"]] = (at, seen)
    return sorted((v for _, v in newest.values()), key=lambda v: -v["score"])


def duplicate_neighbours(rows: Iterable[dict[str, Any]]) -> set[str]:
    """Every video on either side of a "duplicate" verdict among these rows."""
    return {v for row in rows if row["kind"] == "duplicate" for v in (row["video_id"], row["other_id"])}


def groups(rows: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Video id -> a representative of its duplicate group (union-find over "duplicate" verdicts)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for row in rows:
        if row["kind"] == "duplicate":
            a, b = find(row["video_id"]), find(row["other_id"])
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {x: find(x) for x in parent}


def collapse(video_ids: Sequence[str], rows: Iterable[dict[str, Any]]) -> list[int]:
    """Positions of `video_ids` (best first) to keep: the first of each duplicate group."""
    root = groups(rows)
    kept, seen = [], set()
    for i, video_id in enumerate(video_ids):
        group = root.get(video_id, video_id)
        if group not in seen:
            seen.add(group)
            kept.append(i)
    return kept
