"""Rows as the layout stores them, built from embedding messages."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from services.common.errors import PermanentError
from services.common.fingerprints import hash_vector, parse_segment
from services.common.messages import (
    MAX_TAGS,
    DuplicateMatch,
    ModelRef,
    SegmentEmbedding,
    SegmentText,
    VideoDuplicates,
)
from services.common.vectors.layout import (
    FACES,
    FINGERPRINTS,
    LINES_BYTES,
    MAX_LENGTHS,
    METADATA,
    TAG_FIELDS,
    TEXT_BYTES,
    face_pk,
    fingerprint_pk,
    segment_pk,
    text_pk,
    video_pk,
)


def mean_vector(vectors: npt.ArrayLike) -> list[float]:
    """The L2-normalised mean: a segment's vector from its keyframes, a video's from its segments."""
    mean = np.asarray(vectors, dtype=np.float64).mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(float).tolist()


def video_fields(e: SegmentEmbedding) -> dict[str, Any]:
    tags = list(e.video.tags) + [""] * (MAX_TAGS - len(e.video.tags))
    return {
        "video_id": e.video_id,
        "creator": e.video.creator,
        "tenant": e.video.tenant,
        "title": _clip_utf8(e.video.title, MAX_LENGTHS["title"]),
        "uri": e.video.uri,
        "uploaded_at": int(e.video.uploaded_at.timestamp()),
        "width": e.video.width,
        "height": e.video.height,
        "duration_s": e.video.duration_s,
        **dict(zip(TAG_FIELDS, tags, strict=True)),
        METADATA: dict(e.video.metadata),
    }


def _clip_utf8(text: str, max_bytes: int) -> str:
    """A display field cut to its column's byte capacity on a character boundary."""
    return text.encode()[:max_bytes].decode(errors="ignore")


def _thumb(jpeg: bytes) -> str:
    encoded = base64.b64encode(jpeg).decode()
    return encoded if len(encoded) <= 16384 else ""


def segment_row(e: SegmentEmbedding) -> dict[str, Any]:
    keyframe_s = e.keyframe_times[len(e.keyframe_times) // 2] if e.keyframe_times else e.start_s
    return {
        "pk": segment_pk(e.video_id, e.segment_index, e.model.version),
        **video_fields(e),
        "segment_index": e.segment_index,
        "start_s": e.start_s,
        "end_s": e.end_s,
        "keyframe_s": keyframe_s,
        "thumb": _thumb(e.thumbnail),
        "event_id": e.event_id,
        FINGERPRINTS: e.fingerprints,
        FACES: len(e.faces),
        "vector": e.vector,
    }


def face_rows(e: SegmentEmbedding) -> list[dict[str, Any]]:
    return [
        {
            "pk": face_pk(e.video_id, e.segment_index, k),
            "tenant": e.video.tenant,
            "video_id": e.video_id,
            "segment_index": e.segment_index,
            "t": f.t,
            "box": json.dumps(list(f.box)),
            "score": f.score,
            "vector": f.vector,
        }
        for k, f in enumerate(e.faces)
    ]


def fingerprint_rows(e: SegmentEmbedding) -> list[dict[str, Any]]:
    """The segment's rows of the fingerprint index: its frame nearest its middle, plain and centre hash (a
    query's mirrored and centre hashes against these cover the transforms `distance` does)."""
    timed = parse_segment(e.fingerprints)
    if not timed:
        return []
    middle = (e.start_s + e.end_s) / 2
    _, found = min(timed, key=lambda p: abs(p[0] - middle))
    return [
        {
            "pk": fingerprint_pk(e.video_id, e.segment_index, kind),
            "tenant": e.video.tenant,
            "video_id": e.video_id,
            "segment_index": e.segment_index,
            "vector": hash_vector(found.hashes[kind]),
        }
        for kind in (0, 2)
    ]


def text_row(found: SegmentText, vector: Sequence[float]) -> dict[str, Any]:
    """A segment's row of the text collection: its words joined, its lines with boxes, their embedding."""
    joined = _clip_utf8(" ".join(line.text for line in found.lines), TEXT_BYTES)
    lines = [line.model_dump() for line in found.lines]
    while len(json.dumps(lines, ensure_ascii=False).encode()) > LINES_BYTES:  # 64 lines of 256 CJK chars: cut
        lines.pop()
    return {
        "pk": text_pk(found.video_id, found.segment_index),
        "tenant": found.tenant,
        "video_id": found.video_id,
        "segment_index": found.segment_index,
        "start_s": found.start_s,
        "end_s": found.end_s,
        "event_id": found.event_id,
        "text": joined,
        "lines": json.dumps(lines, ensure_ascii=False),
        "vector": list(vector),
    }


def video_row(model: ModelRef, e: SegmentEmbedding, stored: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The video's row from the latest embedding's metadata and its stored segments' vectors."""
    current = sorted((r for r in stored if r["segment_index"] < e.segment_count), key=lambda r: r["segment_index"])
    return {
        "pk": video_pk(e.video_id, model.version),
        **video_fields(e),
        "segment_count": e.segment_count,
        "thumb": current[len(current) // 2]["thumb"],
        "vector": mean_vector([r["vector"] for r in current]),
    }


def check_row(row: dict[str, Any]) -> None:
    """Refuse what a Milvus server would: VARCHAR capacities count UTF-8 bytes there (Lite counts characters)."""
    for name, limit in MAX_LENGTHS.items():
        value = row.get(name)
        if isinstance(value, str) and len(value.encode()) > limit:
            raise PermanentError(
                f"{name} is {len(value.encode())} UTF-8 bytes, over the column's {limit}", reason="field_too_long"
            )


def completed_uploads(
    embeddings: Sequence[SegmentEmbedding], stored: Mapping[str, Sequence[dict[str, Any]]]
) -> list[SegmentEmbedding]:
    """The uploads of this write whose segments 0..count-1 are all durable: written now, or stored earlier
    under the same event id. Computed from the rows themselves, so the indexer can announce completion in
    the very transaction that consumed the last segment: exactly once, with no state of its own."""
    done: list[SegmentEmbedding] = []
    last: dict[tuple[str, str], SegmentEmbedding] = {}
    written: dict[tuple[str, str], set[int]] = {}
    for e in embeddings:
        last[(e.video_id, e.event_id)] = e
        written.setdefault((e.video_id, e.event_id), set()).add(e.segment_index)
    for (video_id, event_id), e in last.items():
        covered = written[(video_id, event_id)] | {
            r["segment_index"] for r in stored.get(video_id, ()) if r.get("event_id") == event_id
        }
        if covered >= set(range(e.segment_count)):
            done.append(e)
    return done


def duplicate_pk(model_version: str, video_id: str, other_id: str) -> str:
    return f"{model_version}|{video_id}|{other_id}"


def duplicate_row(found: VideoDuplicates, match: DuplicateMatch) -> dict[str, Any]:
    detail = match.model_dump(exclude={"other_video_id", "kind", "score"})
    return {
        "pk": duplicate_pk(found.model_version, found.video_id, match.other_video_id),
        "tenant": found.tenant,
        "model_version": found.model_version,
        "video_id": found.video_id,
        "other_id": match.other_video_id,
        "kind": match.kind,
        "score": match.score,
        "detail": json.dumps(detail),
        "checked_at": int(found.checked_at.timestamp() * 1000),
        "placeholder": [0.0, 0.0],
    }
