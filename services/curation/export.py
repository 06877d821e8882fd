"""The curation's export: a tenant's segment vectors out of Milvus into float16 Parquet shards, shard by shard as
independent tasks (this process's threads, or Ray workers that reach Milvus themselves).

A shard is a range of upload times: the ranges come from a sample of the tenant's upload times (one scalar-only
pass, a sample of bounded size), so shards hold about as many rows each whatever the catalogue's history. Each
task reads its range with its own query iterator (primary-key order) and writes one Parquet file, renamed into
place when complete: a resumed export keeps the shards it finished. Vectors are normalised and stored as
float16 (half the disk, the transfer and the page cache of float32; the curation's comparisons run in float32
on them).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from services.common.settings import CommonSettings
from services.common.vectors import SegmentStore

ROW_FIELDS = ["pk", "video_id", "segment_index", "start_s", "end_s", "uri", "tenant"]
ROW_TYPES = {
    "pk": pa.string(),
    "video_id": pa.string(),
    "segment_index": pa.int32(),
    "start_s": pa.float32(),
    "end_s": pa.float32(),
    "uri": pa.string(),
    "tenant": pa.string(),
}
SAMPLE = 100_000  # upload times sampled to place the shard boundaries


def shard_schema(dim: int) -> pa.Schema:
    return pa.schema([*((f, ROW_TYPES[f]) for f in ROW_FIELDS), ("vector", pa.list_(pa.float16(), dim))])


@dataclass(frozen=True)
class ExportShard:
    collection: str
    expr: str  # the tenant's clause and this shard's upload-time range, built from integers only
    dim: int
    path: str
    batch: int


def export_shard(shard: ExportShard) -> int:
    """One shard into its Parquet file (a task: it opens its own Milvus client from the settings); its rows."""
    store = SegmentStore(CommonSettings())
    tmp = f"{shard.path}.tmp"
    rows = 0
    schema = shard_schema(shard.dim)
    with pq.ParquetWriter(tmp, schema) as out:
        for batch in store.iter_rows(shard.collection, [*ROW_FIELDS, "vector"], shard.expr, shard.batch):
            matrix = np.asarray([r["vector"] for r in batch], dtype=np.float32)
            matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
            vectors = pa.FixedSizeListArray.from_arrays(pa.array(matrix.astype(np.float16).ravel()), shard.dim)
            columns = {f: pa.array([r[f] for r in batch], ROW_TYPES[f]) for f in ROW_FIELDS}
            out.write_table(pa.table({**columns, "vector": vectors.cast(schema.field("vector").type)}, schema=schema))
            rows += len(batch)
    os.replace(tmp, shard.path)
    return rows


def read_shard(path: Path, dim: int) -> tuple[pa.Table, npt.NDArray[np.float16]]:
    """A shard's row fields and its (n, dim) float16 vectors."""
    table = pq.read_table(path)
    values = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return table.drop_columns(["vector"]), np.asarray(values, dtype=np.float16).reshape(-1, dim)


def upload_time_bounds(store: SegmentStore, collection: str, expr: str, total: int, shards: int) -> list[int]:
    """Boundaries that split the scope into about `shards` ranges of upload time (fewer where many rows share
    one time): quantiles of a seeded Bernoulli sample of at most about `SAMPLE` upload times."""
    if shards <= 1:
        return []
    keep = min(1.0, SAMPLE / max(total, 1))
    rng = np.random.default_rng(0)
    sample: list[npt.NDArray[np.int64]] = []
    for batch in store.iter_rows(collection, ["uploaded_at"], expr, 10_000):
        times = np.fromiter((r["uploaded_at"] for r in batch), dtype=np.int64, count=len(batch))
        sample.append(times[rng.random(len(times)) < keep])
    values = np.concatenate(sample) if sample else np.empty(0, dtype=np.int64)
    if not len(values):
        return []
    cuts = np.quantile(values, np.arange(1, shards) / shards, method="lower")
    return sorted({int(c) for c in cuts} - {int(values.min())})


def range_clauses(bounds: list[int]) -> list[str]:
    """`uploaded_at` ranges covering every value once: below the first bound, between bounds, from the last."""
    if not bounds:
        return [""]
    edges = [None, *bounds, None]
    clauses = []
    for low, high in itertools.pairwise(edges):
        parts = ([f"uploaded_at >= {int(low)}"] if low is not None else []) + (
            [f"uploaded_at < {int(high)}"] if high is not None else []
        )
        clauses.append(" and ".join(parts))
    return clauses
