"""Milvus layout shared by the indexer (writes), search (reads) and reindex (both).

Two collections per model version, each served through an alias so a catalogue re-embedded with a new
model fills new collections and the aliases switch atomically:
- segments (`clipstream_segments`): one row per segment, pk `video_id#segment@model_version`;
- videos (`clipstream_videos`): one row per video, the normalised mean of its segment vectors, pk
  `video_id@model_version`, for video-to-video search and near-duplicate checks.
Tenant is the partition key. Tags live in eight indexed VARCHAR slots, because ARRAY fields take no
scalar index and `array_contains` runs row by row.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pymilvus import DataType, MilvusClient

from services.common.messages import MAX_TAGS, ModelRef, SegmentEmbedding
from services.common.settings import CommonSettings

log = logging.getLogger(__name__)

SEGMENTS_ALIAS = "clipstream_segments"
VIDEOS_ALIAS = "clipstream_videos"
MAX_TOPK = 16384
_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 300_000, "grpc.keepalive_permit_without_calls": False}
ABOUT = "clipstream.about"  # collection property: the model (and how to load it) its vectors come from
TAG_FIELDS = [f"tag{i}" for i in range(MAX_TAGS)]
VIDEO_FIELDS = [
    "video_id",
    "creator",
    "tenant",
    "title",
    "uri",
    "uploaded_at",
    "width",
    "height",
    "duration_s",
    *TAG_FIELDS,
]
OUTPUT_FIELDS = [*VIDEO_FIELDS, "segment_index", "start_s", "end_s", "keyframe_s", "thumb"]
_STRING_FIELDS = frozenset({"video_id", "creator", "tenant", *TAG_FIELDS})
_SCALAR_INDEXED = ("video_id", "creator", "tenant", "uploaded_at", "duration_s", "height", "width", *TAG_FIELDS)


def _collection(kind: str, model: ModelRef) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"clipstream_{kind}_{model.name}_{model.version}")[:255]


def segments_collection(model: ModelRef) -> str:
    return _collection("segments", model)


def videos_collection(model: ModelRef) -> str:
    return _collection("videos", model)


def segment_pk(video_id: str, segment_index: int, model_version: str) -> str:
    return f"{video_id}#{segment_index:05d}@{model_version}"


def video_pk(video_id: str, model_version: str) -> str:
    return f"{video_id}@{model_version}"


def _video_fields(e: SegmentEmbedding) -> dict[str, Any]:
    tags = list(e.video.tags) + [""] * (MAX_TAGS - len(e.video.tags))
    return {
        "video_id": e.video_id,
        "creator": e.video.creator,
        "tenant": e.video.tenant,
        "title": e.video.title[:1024],
        "uri": e.video.uri[:4096],
        "uploaded_at": int(e.video.uploaded_at.timestamp()),
        "width": e.video.width,
        "height": e.video.height,
        "duration_s": e.video.duration_s,
        **dict(zip(TAG_FIELDS, tags, strict=True)),
    }


def _thumb(jpeg: bytes) -> str:
    encoded = base64.b64encode(jpeg).decode()
    return encoded if len(encoded) <= 16384 else ""


def segment_row(e: SegmentEmbedding) -> dict[str, Any]:
    keyframe_s = e.keyframe_times[len(e.keyframe_times) // 2] if e.keyframe_times else e.start_s
    return {
        "pk": segment_pk(e.video_id, e.segment_index, e.model.version),
        **_video_fields(e),
        "segment_index": e.segment_index,
        "start_s": e.start_s,
        "end_s": e.end_s,
        "keyframe_s": keyframe_s,
        "thumb": _thumb(e.thumbnail),
        "event_id": e.event_id,
        "vector": e.vector,
    }


def _merge(per_query: Sequence[Mapping[str, SegmentHit]]) -> list[SegmentHit]:
    """Each video's best hit over all query vectors, best first."""
    best: dict[str, SegmentHit] = {}
    for query in per_query:
        for vid, hit in query.items():
            if vid not in best or hit.score > best[vid].score:
                best[vid] = hit
    return sorted(best.values(), key=lambda h: -h.score)


def mean_vector(vectors: npt.ArrayLike) -> list[float]:
    mean = np.asarray(vectors, dtype=np.float64).mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(float).tolist()


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


@dataclass(frozen=True)
class IndexConfig:
    index_type: str = "HNSW"
    hnsw_m: int = 16
    hnsw_ef_construction: int = 200
    search_ef: int = 512
    exact_max_rows: int = 256
    consistency: str = "Bounded"

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> IndexConfig:
        return cls(
            settings.milvus_index_type,
            settings.milvus_hnsw_m,
            settings.milvus_hnsw_ef_construction,
            settings.milvus_search_ef,
            settings.milvus_exact_max_rows,
            settings.milvus_search_consistency,
        )

    def build_params(self) -> dict[str, Any]:
        if self.index_type == "HNSW":
            return {"M": self.hnsw_m, "efConstruction": self.hnsw_ef_construction}
        if self.index_type == "IVF_FLAT":
            return {"nlist": 1024}
        return {}

    def search_params(self, fetch: int) -> dict[str, Any]:
        if self.index_type == "HNSW":
            return {"ef": max(fetch, self.search_ef)}
        if self.index_type == "IVF_FLAT":
            return {"nprobe": 32}
        return {}


class SegmentStore:
    def __init__(self, settings: CommonSettings, index: IndexConfig | None = None) -> None:
        token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
        # servers (Milvus Lite's among them) answer pings more often than every 5 min with GOAWAY
        # "too_many_pings", which kills the channel every client in the process shares
        self.client = MilvusClient(uri=settings.milvus_uri, token=token, grpc_options=_GRPC_OPTIONS)
        self.index = index or IndexConfig.from_settings(settings)
        self._known: set[str] = set()

    # --- layout -----------------------------------------------------------------------------------------

    def ensure_collections(self, model: ModelRef, spec: str = "", serve: bool = True) -> tuple[str, str]:
        """Create the model's segment and video collections (and the aliases, if none exist); idempotent.

        `spec` (how to load the model) is recorded in the collection description, so search can embed
        queries for a collection whose model Triton does not serve yet."""
        names = segments_collection(model), videos_collection(model)
        if names[0] in self._known:
            return names
        about = json.dumps({"model": model.model_dump(), "spec": spec})
        for name, video_level in zip(names, (False, True), strict=True):
            if not self.client.has_collection(name):
                self._create(name, model.dim, video_level, about)
            self.client.load_collection(name)
        aliases = self.client.list_aliases().get("aliases", [])
        if serve:
            for alias, name in zip((SEGMENTS_ALIAS, VIDEOS_ALIAS), names, strict=True):
                if alias not in aliases:
                    self.client.create_alias(collection_name=name, alias=alias)
        self._known.add(names[0])
        return names

    def _create(self, name: str, dim: int, video_level: bool, about: str) -> None:
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.VARCHAR, max_length=256, is_primary=True)
        schema.add_field("video_id", DataType.VARCHAR, max_length=128)
        # Milvus 2.3 with partition keys loses rows to filters after upserts: there, tenant is a plain field
        legacy = self._server_before_2_4()
        schema.add_field("tenant", DataType.VARCHAR, max_length=64, is_partition_key=not legacy)
        schema.add_field("creator", DataType.VARCHAR, max_length=256)
        schema.add_field("title", DataType.VARCHAR, max_length=1024)
        schema.add_field("uri", DataType.VARCHAR, max_length=4096)
        schema.add_field("uploaded_at", DataType.INT64)
        schema.add_field("width", DataType.INT32)
        schema.add_field("height", DataType.INT32)
        schema.add_field("duration_s", DataType.FLOAT)
        for tag in TAG_FIELDS:
            schema.add_field(tag, DataType.VARCHAR, max_length=64)
        if video_level:
            schema.add_field("segment_count", DataType.INT32)
        else:
            schema.add_field("segment_index", DataType.INT32)
            schema.add_field("start_s", DataType.FLOAT)
            schema.add_field("end_s", DataType.FLOAT)
            schema.add_field("keyframe_s", DataType.FLOAT)
            schema.add_field("event_id", DataType.VARCHAR, max_length=64)
        schema.add_field("thumb", DataType.VARCHAR, max_length=16384)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        index = self.client.prepare_index_params()
        index.add_index(
            "vector", index_type=self.index.index_type, metric_type="COSINE", params=self.index.build_params()
        )
        for scalar in _SCALAR_INDEXED:
            # Milvus 2.4+ and Lite build INVERTED for strings and numbers; 2.3 has Trie / STL_SORT
            kind = ("Trie" if scalar in _STRING_FIELDS else "STL_SORT") if legacy else "INVERTED"
            index.add_index(scalar, index_type=kind)
        self.client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
        self.client.alter_collection_properties(name, properties={ABOUT: about})
        log.info("created collection", extra={"collection": name, "dim": dim})

    def _server_before_2_4(self) -> bool:
        found = re.match(r"v?(\d+)\.(\d+)", str(self.client.get_server_version()))
        return found is not None and (int(found.group(1)), int(found.group(2))) < (2, 4)

    def served(self, alias: str = SEGMENTS_ALIAS) -> str | None:
        if alias not in self.client.list_aliases().get("aliases", []):
            return None
        return str(self.client.describe_alias(alias)["collection_name"])

    def served_collection(self) -> str | None:
        return self.served(SEGMENTS_ALIAS)

    def model_of(self, collection: str) -> tuple[ModelRef, str]:
        about = json.loads(self.client.describe_collection(collection).get("properties", {}).get(ABOUT) or "{}")
        return ModelRef(**about["model"]), str(about.get("spec", ""))

    def switch_aliases(self, model: ModelRef) -> None:
        """Point both aliases at `model`'s collections: each switch is one atomic metadata operation."""
        for alias, name in ((SEGMENTS_ALIAS, segments_collection(model)), (VIDEOS_ALIAS, videos_collection(model))):
            if alias in self.client.list_aliases().get("aliases", []):
                self.client.alter_alias(collection_name=name, alias=alias)
            else:
                self.client.create_alias(collection_name=name, alias=alias)

    # --- writes -----------------------------------------------------------------------------------------

    def write_segments(self, model: ModelRef, embeddings: Sequence[SegmentEmbedding]) -> None:
        """Upsert segment rows, drop rows beyond each video's current segment count, refresh video rows.

        Two Strong reads a batch, whatever its number of videos: each waits for the server's next time tick
        (~200 ms on a Milvus server)."""
        segments, videos = self.ensure_collections(model)
        rows = {row["pk"]: row for row in (segment_row(e) for e in embeddings)}  # last write of a key wins
        self.client.upsert(segments, list(rows.values()))
        latest = {e.video_id: e for e in embeddings}
        stored: dict[str, list[dict[str, Any]]] = {video_id: [] for video_id in latest}
        for row in self.client.query(
            segments,
            filter=f"video_id in {json.dumps(list(latest))}",
            output_fields=["pk", "video_id", "segment_index", "vector", "thumb"],
            consistency_level="Strong",  # sees the rows just upserted, and earlier batches' segments
        ):
            stored[row["video_id"]].append(row)
        stale = [r["pk"] for vid, rs in stored.items() for r in rs if r["segment_index"] >= latest[vid].segment_count]
        if stale:  # a re-upload cut into fewer segments
            self.client.delete(segments, ids=stale)
        video_rows = [self._video_row(model, latest[vid], found) for vid, found in stored.items()]
        self.client.upsert(videos, video_rows)
        # a Strong read waits until the query nodes have applied these writes; reads at any level see
        # them from then on, so a `videos.indexed` sent after this returns is searchable at once
        self.client.query(
            videos,
            filter=f"pk in {json.dumps([r['pk'] for r in video_rows])}",
            output_fields=["pk"],
            consistency_level="Strong",
        )

    @staticmethod
    def _video_row(model: ModelRef, e: SegmentEmbedding, stored: list[dict[str, Any]]) -> dict[str, Any]:
        current = sorted((r for r in stored if r["segment_index"] < e.segment_count), key=lambda r: r["segment_index"])
        return {
            "pk": video_pk(e.video_id, model.version),
            **_video_fields(e),
            "segment_count": e.segment_count,
            "thumb": current[len(current) // 2]["thumb"],
            "vector": mean_vector([r["vector"] for r in current]),
        }

    # --- reads ------------------------------------------------------------------------------------------

    def _read(self, collection: str, expr: str, fields: list[str], limit: int | None = None) -> list[dict[str, Any]]:
        extra = {} if limit is None else {"limit": limit}
        found = self.client.query(
            collection, filter=expr, output_fields=fields, consistency_level=self.index.consistency, **extra
        )
        return list(found)

    def count(self, expr: str = "", collection: str = SEGMENTS_ALIAS) -> int:
        res = self._read(collection, expr, ["count(*)"])
        return int(res[0]["count(*)"])

    def video(self, video_id: str, expr: str = "") -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """A video's row and its segments (in order), or None; `expr` adds the caller's tenant scope."""
        scope = f"video_id == {json.dumps(video_id)}" + (f" and ({expr})" if expr else "")
        found = self._read(VIDEOS_ALIAS, scope, [*VIDEO_FIELDS, "segment_count", "thumb"])
        if not found:
            return None
        segments = self._read(SEGMENTS_ALIAS, scope, OUTPUT_FIELDS)
        return found[0], sorted(segments, key=lambda r: r["segment_index"])

    def video_vector(self, video_id: str, expr: str = "", collection: str = VIDEOS_ALIAS) -> list[float] | None:
        scope = f"video_id == {json.dumps(video_id)}" + (f" and ({expr})" if expr else "")
        found = self._read(collection, scope, ["vector"])
        return [float(x) for x in found[0]["vector"]] if found else None

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
        if expr and self._admits_few(expr, collection):
            return self._exact(vectors, expr, collection, want)[offset:want]
        fetch = min(max(want * 8, 64), MAX_TOPK)
        while True:
            per_query, returned = self._search(vectors, fetch, expr, collection)
            videos = set().union(*(q.keys() for q in per_query))
            exhausted = all(n < fetch for n in returned) or fetch >= MAX_TOPK
            if len(videos) >= want or exhausted:
                break
            fetch = min(fetch * 4, MAX_TOPK)
        return _merge(per_query)[offset:want]

    def _admits_few(self, expr: str, collection: str) -> bool:
        """Whether the filter matches at most `exact_max_rows` segments (a bounded query, not a count)."""
        limit = self.index.exact_max_rows
        if limit <= 0:
            return False
        return len(self._read(collection, expr, ["pk"], limit=limit + 1)) <= limit

    def _exact(self, vectors: Sequence[Sequence[float]], expr: str, collection: str, want: int) -> list[SegmentHit]:
        """Brute force over the few rows a selective filter admits: HNSW with such a filter loses recall
        (Milvus Lite finds ~1 in 4 of the true top 10 when 0.1% of rows match)."""
        rows = self._read(collection, expr, ["pk", "video_id", "vector"])
        if not rows:
            return []
        matrix = np.asarray([r["vector"] for r in rows], dtype=np.float32)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        scores = (np.asarray(vectors, dtype=np.float32) @ matrix.T).max(axis=0)  # best over query vectors
        best: dict[str, tuple[float, str]] = {}
        for i in np.argsort(-scores):
            best.setdefault(rows[i]["video_id"], (float(scores[i]), rows[i]["pk"]))
            if len(best) >= want:
                break
        pks = [pk for _, pk in best.values()]
        fields = {r["pk"]: r for r in self._read(collection, f"pk in {json.dumps(pks)}", OUTPUT_FIELDS)}
        return [SegmentHit(vid, score, fields[pk]) for vid, (score, pk) in best.items() if pk in fields]

    def _search(
        self, vectors: Sequence[Sequence[float]], fetch: int, expr: str, collection: str
    ) -> tuple[list[dict[str, SegmentHit]], list[int]]:
        results = self.client.search(
            collection,
            data=[list(v) for v in vectors],
            limit=fetch,
            filter=expr,
            output_fields=OUTPUT_FIELDS,
            search_params={"metric_type": "COSINE", "params": self.index.search_params(fetch)},
            consistency_level=self.index.consistency,
        )
        per_query: list[dict[str, SegmentHit]] = []
        for hits in results:
            best: dict[str, SegmentHit] = {}
            for hit in hits:  # sorted by score: the first hit of a video is its best segment
                entity = hit["entity"]
                best.setdefault(entity["video_id"], SegmentHit(entity["video_id"], float(hit["distance"]), entity))
            per_query.append(best)
        return per_query, [len(hits) for hits in results]
