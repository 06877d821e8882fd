"""Names, keys, fields and index settings of the Milvus collections: what a row looks like on every backend.

Tenant is the partition key (a plain indexed field on Milvus 2.3, which loses upserted rows to partition-key
filters). Tags live in eight indexed VARCHAR slots, because ARRAY fields take no scalar index and
`array_contains` runs row by row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pymilvus import DataType, MilvusClient

from services.common.messages import FINGERPRINTS_BYTES, MAX_TAGS, ModelRef
from services.common.settings import CommonSettings

SEGMENTS_ALIAS = "clipstream_segments"
VIDEOS_ALIAS = "clipstream_videos"
OVERRIDES = "clipstream_overrides"  # per video: a delete or a metadata patch, which later writes must honour
DUPLICATES = "clipstream_duplicates"  # near-duplicate verdicts: one row per (model, video, other video)
# model-independent: per segment, the hashes of its frame nearest its middle, searchable by Hamming distance
FINGERPRINT_INDEX = "clipstream_fingerprints"
MAX_TOPK = 16384
TEXT_BYTES = 4096  # a segment's words, joined (cut at a character boundary)
LINES_BYTES = 16384  # its lines as JSON: text, box, confidence, time
ABOUT = "clipstream.about"  # collection property: the model (and how to load it) its vectors come from
TAG_FIELDS = [f"tag{i}" for i in range(MAX_TAGS)]
METADATA = "metadata"  # the uploader's free key/values (JSON); collections created before it lack the column
FACES = "faces"  # faces on a segment's keyframes (a count: `min_faces` filters on it); older collections lack it
FINGERPRINTS = "fingerprints"  # a segment's perceptual hashes (services.media.fingerprints); older collections lack it
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
    METADATA,
]
OUTPUT_FIELDS = [*VIDEO_FIELDS, "segment_index", "start_s", "end_s", "keyframe_s", "thumb"]
STRING_FIELDS = frozenset({"video_id", "creator", "tenant", *TAG_FIELDS})
SCALAR_INDEXED = ("video_id", "creator", "tenant", "uploaded_at", "duration_s", "height", "width", *TAG_FIELDS)
# VARCHAR capacities; a Milvus server counts them in UTF-8 bytes
MAX_LENGTHS = {
    "pk": 256,
    "video_id": 128,
    "tenant": 64,
    "creator": 256,
    "title": 1024,
    "uri": 4096,
    "event_id": 64,
    "thumb": 16384,
    FINGERPRINTS: FINGERPRINTS_BYTES,
    **dict.fromkeys(TAG_FIELDS, 64),
}


def _collection(kind: str, model: ModelRef) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"clipstream_{kind}_{model.name}_{model.version}")[:255]


def segments_collection(model: ModelRef) -> str:
    return _collection("segments", model)


def videos_collection(model: ModelRef) -> str:
    return _collection("videos", model)


def cache_collection(model: ModelRef) -> str:
    """The generation cache's entries: one row per generated video, keyed by its prompt's text embedding."""
    return _collection("cache", model)


def faces_collection(model: ModelRef) -> str:
    """The faces on the model's segments: one row per face, its crop's embedding by the same model."""
    return _collection("faces", model)


def face_pk(video_id: str, segment_index: int, k: int) -> str:
    return f"{video_id}#{segment_index:05d}#face{k:02d}"


def text_collection(encoder: str) -> str:
    """On-screen text per segment, embedded by one sentence encoder (`encoder` is its version)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"clipstream_text_{encoder}")[:255]


def text_pk(video_id: str, segment_index: int) -> str:
    return f"{video_id}#{segment_index:05d}"


def segment_pk(video_id: str, segment_index: int, model_version: str) -> str:
    return f"{video_id}#{segment_index:05d}@{model_version}"


def fingerprint_pk(video_id: str, segment_index: int, kind: int) -> str:
    """A row of the fingerprint index: `kind` is the hash's place in the fingerprint (0 plain, 2 centre)."""
    return f"{video_id}#{segment_index:05d}#print{kind}"


def video_pk(video_id: str, model_version: str) -> str:
    return f"{video_id}@{model_version}"


@dataclass(frozen=True)
class IndexConfig:
    index_type: str = "HNSW"
    hnsw_m: int = 16
    hnsw_ef_construction: int = 200
    search_ef: int = 512
    exact_max_rows: int = 256
    consistency: str = "Bounded"
    tenant_buckets: int = 64  # partitions of the tenant partition key (Milvus's default)

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> IndexConfig:
        return cls(
            settings.milvus_index_type,
            settings.milvus_hnsw_m,
            settings.milvus_hnsw_ef_construction,
            settings.milvus_search_ef,
            settings.milvus_exact_max_rows,
            settings.milvus_search_consistency,
            settings.milvus_tenant_buckets,
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


def create_collection(
    client: MilvusClient,
    name: str,
    dim: int,
    video_level: bool,
    index: IndexConfig,
    legacy: bool,
    free_metadata: bool = True,
) -> None:
    """One collection of the layout; `legacy` is a server before 2.4 (no partition key, Trie/STL_SORT).
    `free_metadata=False` is the layout before the metadata column, as earlier releases created it."""
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.VARCHAR, max_length=MAX_LENGTHS["pk"], is_primary=True)
    schema.add_field("video_id", DataType.VARCHAR, max_length=MAX_LENGTHS["video_id"])
    schema.add_field("tenant", DataType.VARCHAR, max_length=MAX_LENGTHS["tenant"], is_partition_key=not legacy)
    schema.add_field("creator", DataType.VARCHAR, max_length=MAX_LENGTHS["creator"])
    schema.add_field("title", DataType.VARCHAR, max_length=MAX_LENGTHS["title"])
    schema.add_field("uri", DataType.VARCHAR, max_length=MAX_LENGTHS["uri"])
    schema.add_field("uploaded_at", DataType.INT64)
    schema.add_field("width", DataType.INT32)
    schema.add_field("height", DataType.INT32)
    schema.add_field("duration_s", DataType.FLOAT)
    for tag in TAG_FIELDS:
        schema.add_field(tag, DataType.VARCHAR, max_length=MAX_LENGTHS[tag])
    if free_metadata:
        schema.add_field(METADATA, DataType.JSON)
    if video_level:
        schema.add_field("segment_count", DataType.INT32)
    else:
        schema.add_field("segment_index", DataType.INT32)
        schema.add_field("start_s", DataType.FLOAT)
        schema.add_field("end_s", DataType.FLOAT)
        schema.add_field("keyframe_s", DataType.FLOAT)
        schema.add_field("event_id", DataType.VARCHAR, max_length=MAX_LENGTHS["event_id"])
        schema.add_field(FINGERPRINTS, DataType.VARCHAR, max_length=MAX_LENGTHS[FINGERPRINTS])
        schema.add_field(FACES, DataType.INT32)
    schema.add_field("thumb", DataType.VARCHAR, max_length=MAX_LENGTHS["thumb"])
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    params = client.prepare_index_params()
    params.add_index("vector", index_type=index.index_type, metric_type="COSINE", params=index.build_params())
    for scalar in SCALAR_INDEXED:
        # Milvus 2.4+ and Lite build INVERTED for strings and numbers; 2.3 has Trie / STL_SORT
        kind = ("Trie" if scalar in STRING_FIELDS else "STL_SORT") if legacy else "INVERTED"
        params.add_index(scalar, index_type=kind)
    buckets = {} if legacy else {"num_partitions": index.tenant_buckets}
    client.create_collection(name, schema=schema, index_params=params, consistency_level="Strong", **buckets)


def create_overrides(client: MilvusClient) -> None:
    """One row per video that was deleted or patched: model-independent, so every model's writes read it.

    Milvus wants a vector field in every collection: a 2-d placeholder nobody searches."""
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.VARCHAR, max_length=MAX_LENGTHS["video_id"], is_primary=True)
    schema.add_field("tenant", DataType.VARCHAR, max_length=MAX_LENGTHS["tenant"])
    schema.add_field("deleted_at", DataType.INT64)  # epoch ms; 0: not deleted
    schema.add_field("patched_at", DataType.INT64)  # epoch ms; 0: no patch
    schema.add_field("patch", DataType.VARCHAR, max_length=8192)  # JSON: title, creator, tags
    schema.add_field("placeholder", DataType.FLOAT_VECTOR, dim=2)
    params = client.prepare_index_params()
    params.add_index("placeholder", index_type="FLAT", metric_type="L2")
    client.create_collection(OVERRIDES, schema=schema, index_params=params, consistency_level="Strong")


def create_duplicates(client: MilvusClient) -> None:
    """One row per verdict of the near-duplicate stage, from the checked video's side. Model-independent
    like the overrides (the model version is a column), with the same 2-d placeholder vector."""
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.VARCHAR, max_length=MAX_LENGTHS["pk"] + MAX_LENGTHS["video_id"], is_primary=True)
    schema.add_field("tenant", DataType.VARCHAR, max_length=MAX_LENGTHS["tenant"])
    schema.add_field("model_version", DataType.VARCHAR, max_length=64)
    schema.add_field("video_id", DataType.VARCHAR, max_length=MAX_LENGTHS["video_id"])
    schema.add_field("other_id", DataType.VARCHAR, max_length=MAX_LENGTHS["video_id"])
    schema.add_field("kind", DataType.VARCHAR, max_length=16)
    schema.add_field("score", DataType.FLOAT)
    schema.add_field("detail", DataType.VARCHAR, max_length=1024)  # JSON: matched ranges, segments, coverage
    schema.add_field("checked_at", DataType.INT64)
    schema.add_field("placeholder", DataType.FLOAT_VECTOR, dim=2)
    params = client.prepare_index_params()
    params.add_index("placeholder", index_type="FLAT", metric_type="L2")
    client.create_collection(DUPLICATES, schema=schema, index_params=params, consistency_level="Strong")


def create_fingerprint_index(client: MilvusClient, legacy: bool) -> None:
    """Two rows per segment: its middle frame's plain and centre hashes, each as a 64-d +-1 vector (Lite has no
    binary vectors; the cosine of two such vectors gives their Hamming distance). Model-independent like the
    verdicts: a copy is found across model changes, and by a model that knows nothing of the footage."""
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.VARCHAR, max_length=MAX_LENGTHS["pk"], is_primary=True)
    schema.add_field("tenant", DataType.VARCHAR, max_length=MAX_LENGTHS["tenant"])
    schema.add_field("video_id", DataType.VARCHAR, max_length=MAX_LENGTHS["video_id"])
    schema.add_field("segment_index", DataType.INT32)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=64)
    params = client.prepare_index_params()
    params.add_index("vector", index_type="HNSW", metric_type="COSINE", params={"M": 16, "efConstruction": 200})
    for scalar in ("tenant", "video_id"):
        params.add_index(scalar, index_type="Trie" if legacy else "INVERTED")
    client.create_collection(FINGERPRINT_INDEX, schema=schema, index_params=params, consistency_level="Strong")


def create_faces(client: MilvusClient, name: str, dim: int, legacy: bool) -> None:
    """One row per face on a segment's keyframes: where (box, keyframe time), how sure, its crop's vector."""
    extra = [("t", DataType.FLOAT, {}), ("box", DataType.VARCHAR, {"max_length": 128}), ("score", DataType.FLOAT, {})]
    _create_segment_side(client, name, dim, legacy, extra)  # box: JSON [x0, y0, x1, y1]


def create_text(client: MilvusClient, name: str, dim: int, legacy: bool) -> None:
    """One row per segment with words on screen: the words (joined, and each line with its box, confidence and
    time as JSON) and their sentence embedding. A segment without text has no row (`has_text` is a row's being)."""
    extra = [
        ("start_s", DataType.FLOAT, {}),
        ("end_s", DataType.FLOAT, {}),
        ("event_id", DataType.VARCHAR, {"max_length": MAX_LENGTHS["event_id"]}),
        ("text", DataType.VARCHAR, {"max_length": TEXT_BYTES}),
        ("lines", DataType.VARCHAR, {"max_length": LINES_BYTES}),
    ]
    _create_segment_side(client, name, dim, legacy, extra)


def _create_segment_side(
    client: MilvusClient, name: str, dim: int, legacy: bool, extra: list[tuple[str, DataType, dict[str, int]]]
) -> None:
    """A collection of rows about segments beside the segment collections (faces, on-screen text): keyed,
    tenant-scoped, the segment named, `extra` fields, and one HNSW cosine vector."""
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.VARCHAR, max_length=MAX_LENGTHS["pk"], is_primary=True)
    schema.add_field("tenant", DataType.VARCHAR, max_length=MAX_LENGTHS["tenant"])
    schema.add_field("video_id", DataType.VARCHAR, max_length=MAX_LENGTHS["video_id"])
    schema.add_field("segment_index", DataType.INT32)
    for field, kind, options in extra:
        schema.add_field(field, kind, **options)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    params = client.prepare_index_params()
    params.add_index("vector", index_type="HNSW", metric_type="COSINE", params={"M": 16, "efConstruction": 200})
    for scalar in ("tenant", "video_id"):
        params.add_index(scalar, index_type="Trie" if legacy else "INVERTED")
    client.create_collection(name, schema=schema, index_params=params, consistency_level="Strong")


def create_cache(client: MilvusClient, name: str, dim: int, legacy: bool) -> None:
    """Generation-cache entries: the exact-match parameters as indexed scalars, the prompt's vector, the
    references' vector."""
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.VARCHAR, max_length=64, is_primary=True)
    schema.add_field("tenant", DataType.VARCHAR, max_length=MAX_LENGTHS["tenant"])
    schema.add_field("video_id", DataType.VARCHAR, max_length=MAX_LENGTHS["video_id"])
    schema.add_field("generator", DataType.VARCHAR, max_length=128)
    schema.add_field("aspect_ratio", DataType.VARCHAR, max_length=16)
    schema.add_field("duration_s", DataType.FLOAT)
    schema.add_field("seed", DataType.INT64)  # -1: none given
    schema.add_field("expires_at", DataType.INT64)  # epoch ms; 0: never
    schema.add_field("provenance", DataType.VARCHAR, max_length=8192)  # JSON: the request, generator, cost
    # the reference images' mean vector, float16 in base64 ("" without references): one vector field per
    # collection before Milvus 2.4, and it is only compared with the few entries the filter admits
    schema.add_field("references", DataType.VARCHAR, max_length=16384)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    params = client.prepare_index_params()
    params.add_index("vector", index_type="HNSW", metric_type="COSINE", params={"M": 16, "efConstruction": 200})
    for scalar in ("tenant", "generator", "aspect_ratio"):  # the exact-match filter of every lookup
        params.add_index(scalar, index_type="Trie" if legacy else "INVERTED")
    client.create_collection(name, schema=schema, index_params=params, consistency_level="Strong")
