"""Milvus layout shared by the indexer (writes) and search (reads).

Collections are named by model version and served through an alias, so a catalogue re-embedded with a
new model fills a new collection and the alias switches atomically. Primary keys derive from
(video_id, segment index, model version): replaying a message rewrites the same row.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymilvus import DataType, MilvusClient

from services.common.messages import ModelRef, SegmentEmbedding
from services.common.settings import CommonSettings

log = logging.getLogger(__name__)

SEGMENTS_ALIAS = "clipstream_segments"
MAX_TOPK = 16384
OUTPUT_FIELDS = [
    "video_id",
    "segment_index",
    "start_s",
    "end_s",
    "keyframe_s",
    "creator",
    "tenant",
    "title",
    "uri",
    "uploaded_at",
    "width",
    "height",
    "duration_s",
]


def segments_collection(model: ModelRef) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"clipstream_segments_{model.name}_{model.version}")[:255]


def segment_pk(video_id: str, segment_index: int, model_version: str) -> str:
    return f"{video_id}#{segment_index:05d}@{model_version}"


def segment_row(e: SegmentEmbedding) -> dict[str, Any]:
    keyframe_s = e.keyframe_times[len(e.keyframe_times) // 2] if e.keyframe_times else e.start_s
    return {
        "pk": segment_pk(e.video_id, e.segment_index, e.model.version),
        "video_id": e.video_id,
        "segment_index": e.segment_index,
        "start_s": e.start_s,
        "end_s": e.end_s,
        "keyframe_s": keyframe_s,
        "creator": e.video.creator,
        "tenant": e.video.tenant,
        "title": e.video.title[:1024],
        "uri": e.video.uri[:4096],
        "uploaded_at": int(e.video.uploaded_at.timestamp()),
        "width": e.video.width,
        "height": e.video.height,
        "duration_s": e.video.duration_s,
        "event_id": e.event_id,
        "vector": e.vector,
    }


@dataclass(frozen=True)
class SegmentHit:
    video_id: str
    score: float
    fields: Mapping[str, Any]

    @property
    def start_s(self) -> float:
        return float(self.fields["start_s"])

    @property
    def end_s(self) -> float:
        return float(self.fields["end_s"])


class SegmentStore:
    def __init__(self, settings: CommonSettings) -> None:
        token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
        self.client = MilvusClient(uri=settings.milvus_uri, token=token)
        self._known: set[str] = set()

    def ensure_collection(self, model: ModelRef) -> str:
        """Create the model's collection (and the alias, if none exists yet); idempotent."""
        name = segments_collection(model)
        if name in self._known:
            return name
        if not self.client.has_collection(name):
            self._create(name, model.dim)
        self.client.load_collection(name)
        if SEGMENTS_ALIAS not in self.client.list_aliases().get("aliases", []):
            self.client.create_alias(collection_name=name, alias=SEGMENTS_ALIAS)
        self._known.add(name)
        return name

    def _create(self, name: str, dim: int) -> None:
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.VARCHAR, max_length=256, is_primary=True)
        schema.add_field("video_id", DataType.VARCHAR, max_length=128)
        schema.add_field("segment_index", DataType.INT32)
        schema.add_field("start_s", DataType.FLOAT)
        schema.add_field("end_s", DataType.FLOAT)
        schema.add_field("keyframe_s", DataType.FLOAT)
        schema.add_field("creator", DataType.VARCHAR, max_length=256)
        schema.add_field("tenant", DataType.VARCHAR, max_length=64)
        schema.add_field("title", DataType.VARCHAR, max_length=1024)
        schema.add_field("uri", DataType.VARCHAR, max_length=4096)
        schema.add_field("uploaded_at", DataType.INT64)
        schema.add_field("width", DataType.INT32)
        schema.add_field("height", DataType.INT32)
        schema.add_field("duration_s", DataType.FLOAT)
        schema.add_field("event_id", DataType.VARCHAR, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        index = self.client.prepare_index_params()
        index.add_index("vector", index_type="HNSW", metric_type="COSINE", params={"M": 16, "efConstruction": 200})
        # INVERTED is the scalar index both Milvus Lite and servers build, for strings and numbers alike
        for scalar in ("video_id", "creator", "tenant", "uploaded_at", "duration_s", "height"):
            index.add_index(scalar, index_type="INVERTED")
        self.client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
        log.info("created collection", extra={"collection": name, "dim": dim})

    def upsert(self, collection: str, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.client.upsert(collection, list(rows))

    def count(self, expr: str = "", collection: str = SEGMENTS_ALIAS) -> int:
        res = self.client.query(collection, filter=expr, output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    def served_collection(self) -> str | None:
        if SEGMENTS_ALIAS not in self.client.list_aliases().get("aliases", []):
            return None
        return str(self.client.describe_alias(SEGMENTS_ALIAS)["collection_name"])

    def best_segments(
        self,
        vectors: Sequence[Sequence[float]],
        limit: int,
        offset: int = 0,
        expr: str = "",
        collection: str = SEGMENTS_ALIAS,
    ) -> list[SegmentHit]:
        """Best segment of each of the top videos for one or more query vectors.

        Grouping happens here, over an over-fetched segment list that widens until enough distinct videos
        are found: Milvus Lite's group-by drops groups when one video has many near-identical segments,
        and Milvus 2.3 ignores group-by altogether. With several query vectors (a video query's densely
        sampled frames), a video scores its best (query frame, segment) pair: an excerpt matches the video
        that contains any of its moments, which is what finding an excerpt's source asks.
        """
        want = offset + limit
        fetch = min(max(want * 8, 64), MAX_TOPK)
        while True:
            per_query, returned = self._search(vectors, fetch, expr, collection)
            videos = set().union(*(q.keys() for q in per_query))
            exhausted = all(n < fetch for n in returned) or fetch >= MAX_TOPK
            if len(videos) >= want or exhausted:
                break
            fetch = min(fetch * 4, MAX_TOPK)
        best: dict[str, SegmentHit] = {}
        for query in per_query:
            for vid, hit in query.items():
                if vid not in best or hit.score > best[vid].score:
                    best[vid] = hit
        return sorted(best.values(), key=lambda h: -h.score)[offset:want]

    def _search(
        self, vectors: Sequence[Sequence[float]], fetch: int, expr: str, collection: str
    ) -> tuple[list[dict[str, SegmentHit]], list[int]]:
        results = self.client.search(
            collection,
            data=[list(v) for v in vectors],
            limit=fetch,
            filter=expr,
            output_fields=OUTPUT_FIELDS,
            search_params={"metric_type": "COSINE", "params": {"ef": max(fetch, 64)}},
        )
        per_query: list[dict[str, SegmentHit]] = []
        for hits in results:
            best: dict[str, SegmentHit] = {}
            for hit in hits:  # sorted by score: the first hit of a video is its best segment
                entity = hit["entity"]
                best.setdefault(entity["video_id"], SegmentHit(entity["video_id"], float(hit["distance"]), entity))
            per_query.append(best)
        return per_query, [len(hits) for hits in results]


def epoch(dt: datetime) -> int:
    return int(dt.timestamp())
