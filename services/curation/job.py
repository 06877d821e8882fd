"""`clipstream curate`: cluster a tenant's segment vectors, drop near-identical segments within clusters,
and write a Parquet manifest a training pipeline reads directly.

Steps, each checkpointed in the work folder so an interrupted run resumes where it stopped:
1. export: the collection streamed with a query iterator (batches of `batch` rows) into a float32 file on
   disk (memory-mapped afterwards) and a Parquet file of the rows' fields: never one Python list;
2. k-means with faiss on the vectors (faiss samples at most 256 points per centroid to train), then every
   vector assigned to its nearest centroid in batches;
3. SemDeDup cluster by cluster (`semdedup.py`), a checkpoint every few clusters, then the pairs k-means
   split between neighbouring clusters (`across_borders`, a faiss IVF range search over the same centroids);
4. the manifest written to a temporary file beside the target and renamed over it: a reader sees the old
   manifest or the new one, never half of one.
An export that was interrupted starts again (a query iterator cannot resume); `restart` discards the
work folder. The work folder is named after the tenant, collection and parameters.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from services.common.errors import PermanentError
from services.common.filters import Filters
from services.common.vectors import SegmentStore
from services.curation.cluster import assign, default_clusters, members, train
from services.curation.executor import Executor, InProcess
from services.curation.export import (
    ROW_FIELDS,
    ROW_TYPES,
    ExportShard,
    export_shard,
    range_clauses,
    read_shard,
    upload_time_bounds,
)
from services.curation.semdedup import across_borders, dedup_group

MANIFEST_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("segment_index", pa.int32()),
        ("start_s", pa.float32()),
        ("end_s", pa.float32()),
        ("uri", pa.string()),
        ("tenant", pa.string()),
        ("cluster", pa.int32()),
        ("distance", pa.float32()),  # cosine distance to the cluster's centroid
        ("kept", pa.bool_()),
        ("reason", pa.string()),  # "" when kept; "near_duplicate" when dropped
        ("duplicate_of_video", pa.string()),
        ("duplicate_of_segment", pa.int32()),
        ("similarity", pa.float32()),  # to that kept segment
    ]
)


class CurationError(PermanentError):
    reason = "curation_failed"


@dataclass(frozen=True)
class CurationConfig:
    tenant: str
    collection: str
    eps: float = 0.05  # drop a member whose cosine to a kept one exceeds 1 - eps
    clusters: int = 0  # 0: about sqrt(n / 2)
    niter: int = 20
    seed: int = 0
    batch: int = 2000  # rows per export batch and per assignment task
    shard_rows: int = 250_000  # rows per export shard (one export task; its memory is about one batch)

    def key(self) -> str:
        raw = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass
class CurationReport:
    rows: int = 0
    clusters: int = 0
    kept: int = 0
    dropped: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    manifest: str = ""
    resumed_from: str = ""


Progress = Callable[[str, float], None]  # (step, fraction done)


CHECKPOINT_CLUSTERS = 64  # the dedup step checkpoints after each group of this many clusters (one executor task)


class CurationJob:
    """The steps below; the assignment and the per-cluster SemDeDup run on `executor` (this process, or Ray
    tasks: `executor.py`), whose results come back in order, so every executor writes the same manifest."""

    def __init__(
        self,
        store: SegmentStore,
        config: CurationConfig,
        work: Path,
        progress: Progress | None = None,
        executor: Executor | None = None,
    ):
        self.store = store
        self.config = config
        self.work = work / f"{config.tenant}-{config.key()}"
        self.progress = progress or (lambda step, done: None)
        self.executor = executor or InProcess()
        self._state_path = self.work / "state.json"

    # --- checkpoint -------------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return json.loads(self._state_path.read_text()) if self._state_path.exists() else {}

    def _save(self, **update: Any) -> None:
        state = self._state() | update
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self._state_path)

    # --- steps ------------------------------------------------------------------------------------------

    def run(self, manifest: Path, restart: bool = False) -> CurationReport:
        if restart and self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True, exist_ok=True)
        report = CurationReport(resumed_from=self._state().get("step", ""))
        steps = (
            ("export", self._export),
            ("cluster", self._cluster),
            ("dedup", self._dedup),
            ("borders", self._borders),
        )
        for step, do in steps:
            if not self._state().get(f"{step}_done"):
                started = time.perf_counter()
                do()
                report.seconds[step] = round(time.perf_counter() - started, 3)
                self._save(**{f"{step}_done": True, "step": step})
        started = time.perf_counter()
        self._write_manifest(manifest, report)
        report.seconds["manifest"] = round(time.perf_counter() - started, 3)
        return report

    def _export(self) -> None:
        """The tenant's rows into float16 Parquet shards (tasks on the executor; finished shards are kept when a
        run resumes), then, in shard order, into the memory-mapped `vectors.f16` and `rows.parquet`."""
        collection = self.config.collection
        if not self.store.exists(collection):
            raise CurationError(f"no collection {collection}", reason="unknown_collection")
        dim = self.store.model_of(collection)[0].dim
        expr = Filters(tenant=self.config.tenant).compile()
        state = self._state()
        if "export_bounds" not in state:
            total = self.store.count(expr, collection=collection)
            if total == 0:
                raise CurationError(
                    f"tenant {self.config.tenant!r} has no segments in {collection}", reason="empty_catalogue"
                )
            shards = -(-total // self.config.shard_rows)
            state["export_bounds"] = upload_time_bounds(self.store, collection, expr, total, shards)
            self._save(export_bounds=state["export_bounds"], export_total=total)
        folder = self.work / "shards"
        folder.mkdir(exist_ok=True)
        plan = [
            ExportShard(
                collection,
                f"{expr} and {clause}" if clause else expr,
                dim,
                str(folder / f"{i:05d}.parquet"),
                self.config.batch,
            )
            for i, clause in enumerate(range_clauses(state["export_bounds"]))
        ]
        todo = [shard for shard in plan if not Path(shard.path).exists()]
        for i, _ in enumerate(self.executor.imap(export_shard, todo)):
            self.progress("export", 0.9 * (len(plan) - len(todo) + i + 1) / len(plan))
        done = 0
        with (
            open(self.work / "vectors.f16", "wb") as vectors,
            pq.ParquetWriter(self.work / "rows.parquet", pa.schema([(f, ROW_TYPES[f]) for f in ROW_FIELDS])) as rows,
        ):
            for shard in plan:
                table, matrix = read_shard(Path(shard.path), dim)
                vectors.write(matrix.tobytes())
                rows.write_table(table)
                done += len(matrix)
        if done == 0:
            raise CurationError(
                f"tenant {self.config.tenant!r} has no segments in {collection}", reason="empty_catalogue"
            )
        self.progress("export", 1.0)
        self._save(rows=done, dim=dim)

    def _vectors(self) -> npt.NDArray[np.float16]:
        state = self._state()
        return np.memmap(self.work / "vectors.f16", dtype=np.float16, mode="r", shape=(state["rows"], state["dim"]))

    def _cluster(self) -> None:
        vectors = self._vectors()
        n = len(vectors)
        k = min(self.config.clusters or default_clusters(n), n)
        centroids = train(vectors, k, self.config.niter, self.config.seed)
        np.save(self.work / "centroids.npy", centroids)
        self.progress("cluster", 0.5)
        labels = np.lib.format.open_memmap(self.work / "labels.npy", mode="w+", dtype=np.int32, shape=(n,))
        distance = np.lib.format.open_memmap(self.work / "distance.npy", mode="w+", dtype=np.float32, shape=(n,))
        assign(
            vectors,
            centroids,
            labels,
            distance,
            lambda done: self.progress("cluster", 0.5 + done / 2),
            executor=self.executor,
        )
        labels.flush()
        distance.flush()
        self._save(clusters=k)

    def _members(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Rows grouped by cluster and each cluster's bounds (`cluster.members`), computed once into memory-mapped
        files: 8 B a row on disk, not in the driver."""
        order_path, bounds_path = self.work / "order.npy", self.work / "bounds.npy"
        if not bounds_path.exists():
            labels = np.load(self.work / "labels.npy", mmap_mode="r")
            tmp = self.work / "order.tmp.npy"
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int64, shape=(len(labels),))
            _, bounds = members(labels, int(self._state()["clusters"]), out=out)
            out.flush()
            del out
            os.replace(tmp, order_path)
            np.save(self.work / "bounds.tmp.npy", bounds)
            os.replace(self.work / "bounds.tmp.npy", bounds_path)  # last: its presence says both are whole
        return np.load(order_path, mmap_mode="r"), np.load(bounds_path)

    def _dedup(self) -> None:
        """Cluster by cluster into `twin.npy` (-1: kept; else the row it duplicates), a checkpoint after each
        group of `CHECKPOINT_CLUSTERS` clusters (a group is one executor task)."""
        state = self._state()
        n, k = state["rows"], state["clusters"]
        vectors = self._vectors()
        distance = np.load(self.work / "distance.npy", mmap_mode="r")
        order, bounds = self._members()
        twin = _array(self.work / "twin.npy", np.int64, n)
        similarity = _array(self.work / "similarity.npy", np.float32, n)
        groups: deque[tuple[int, list[npt.NDArray[np.int64]]]] = deque()  # (next cluster, each cluster's rows)

        def tasks() -> Iterator[tuple[list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]], float]]:
            for start in range(int(state.get("dedup_next_cluster", 0)), k, CHECKPOINT_CLUSTERS):
                end = min(start - start % CHECKPOINT_CLUSTERS + CHECKPOINT_CLUSTERS, k)
                rows = [np.asarray(order[bounds[c] : bounds[c + 1]]) for c in range(start, end)]
                rows = [r for r in rows if len(r)]
                groups.append((end, rows))
                yield [(np.asarray(vectors[r]), np.asarray(distance[r])) for r in rows], self.config.eps

        for found in self.executor.imap(dedup_group, tasks()):
            end, rows = groups.popleft()
            for r, cluster in zip(rows, found, strict=True):
                twin[r] = np.where(cluster.kept, -1, r[np.maximum(cluster.twin, 0)])
                similarity[r] = cluster.similarity
            twin.flush()
            similarity.flush()
            self._save(dedup_next_cluster=end)
            self.progress("dedup", end / k)

    def _borders(self) -> None:
        """Pairs split between neighbouring clusters (see `semdedup.across_borders`), as tasks on the executor."""
        twin = np.load(self.work / "twin.npy", mmap_mode="r+")
        similarity = np.load(self.work / "similarity.npy", mmap_mode="r+")
        centroids = np.load(self.work / "centroids.npy")
        across_borders(
            self._vectors(), twin, similarity, centroids, self.config.eps, self._members(), executor=self.executor
        )
        twin.flush()
        similarity.flush()
        self.progress("borders", 1.0)

    def _ids(self, source: pq.ParquetFile) -> RowIds:
        """Every row's video and segment id as an uncompressed Arrow file, written once batch by batch and read
        memory-mapped (`RowIds`): looking up a twin touches its pages, the driver's heap holds none of it."""
        path = self.work / "ids.arrow"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            schema = pa.schema([("video_id", ROW_TYPES["video_id"]), ("segment_index", ROW_TYPES["segment_index"])])
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
                for batch in source.iter_batches(batch_size=self.config.batch, columns=schema.names):
                    writer.write_batch(batch)
            os.replace(tmp, path)
        return RowIds(path)

    def _write_manifest(self, manifest: Path, report: CurationReport) -> None:
        """Batch by batch (`config.batch` rows; the rows' ids memory-mapped, as a twin can be any row), into one
        Parquet file, or, for a path without the `.parquet` suffix, a dataset of two folders,
        `kept/` and `dropped/` (a training loader reads `kept/` alone). Written aside and renamed into place: a
        reader never sees half of one."""
        state = self._state()
        labels, distance = (np.load(self.work / f, mmap_mode="r") for f in ("labels.npy", "distance.npy"))
        twin, similarity = (np.load(self.work / f, mmap_mode="r") for f in ("twin.npy", "similarity.npy"))
        source = pq.ParquetFile(self.work / "rows.parquet")
        ids = self._ids(source)  # memory-mapped: a twin can be any row
        dataset = manifest.suffix != ".parquet"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        tmp = manifest.with_name(f".{manifest.name}.tmp")
        _remove(tmp)
        writers: dict[str, pq.ParquetWriter] = {}

        def write(part: str, table: pa.Table) -> None:
            if part not in writers:
                path = tmp / part / "part-00000.parquet" if dataset else tmp
                path.parent.mkdir(parents=True, exist_ok=True)
                writers[part] = pq.ParquetWriter(path, MANIFEST_SCHEMA)
            writers[part].write_table(table)

        start = kept_total = 0
        try:
            for batch in source.iter_batches(batch_size=self.config.batch):
                rows = slice(start, start + batch.num_rows)
                kept = np.asarray(twin[rows]) < 0
                twins = ids.take(np.asarray(twin[rows]), kept)  # null where kept
                table = pa.table(
                    {
                        "video_id": batch.column("video_id"),
                        "segment_index": batch.column("segment_index").cast(pa.int32()),
                        "start_s": batch.column("start_s").cast(pa.float32()),
                        "end_s": batch.column("end_s").cast(pa.float32()),
                        "uri": batch.column("uri"),
                        "tenant": batch.column("tenant"),
                        "cluster": pa.array(labels[rows], pa.int32()),
                        "distance": pa.array(distance[rows], pa.float32()),
                        "kept": pa.array(kept),
                        "reason": pa.array(np.where(kept, "", "near_duplicate")),
                        "duplicate_of_video": twins.column("video_id"),
                        "duplicate_of_segment": twins.column("segment_index").cast(pa.int32()),
                        "similarity": pa.array(similarity[rows], pa.float32(), mask=kept),
                    },
                    schema=MANIFEST_SCHEMA,
                )
                if dataset:
                    for part, mask in (("kept", kept), ("dropped", ~kept)):
                        if mask.any():
                            write(part, table.filter(pa.array(mask)))
                else:
                    write("", table)
                start += batch.num_rows
                kept_total += int(kept.sum())
        finally:
            for writer in writers.values():
                writer.close()
        _replace(tmp, manifest)  # never empty: the export refuses an empty catalogue
        report.rows, report.clusters = int(state["rows"]), int(state["clusters"])
        report.kept, report.dropped = kept_total, int(state["rows"]) - kept_total
        report.manifest = str(manifest)


class RowIds:
    """The rows' ids, memory-mapped from an Arrow file of record batches, taken batch by batch: a take on the
    whole file as one table would first concatenate its batches (a copy of every id, on each call)."""

    def __init__(self, path: Path) -> None:
        self._reader = pa.ipc.open_file(pa.memory_map(str(path)))
        sizes = [self._reader.get_batch(i).num_rows for i in range(self._reader.num_record_batches)]
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def take(self, rows: npt.NDArray[np.int64], null: npt.NDArray[np.bool_]) -> pa.Table:
        """The ids of `rows` in that order; null where `null` says (its row is ignored)."""
        wanted = np.flatnonzero(~null)
        targets = rows[wanted]
        batch_of = np.searchsorted(self._starts, targets, side="right") - 1
        order = np.argsort(batch_of, kind="stable")
        parts = []
        for b in np.unique(batch_of):
            picked = order[batch_of[order] == b]
            parts.append(self._reader.get_batch(int(b)).take(pa.array(targets[picked] - self._starts[b])))
        schema = self._reader.schema
        found = pa.Table.from_batches(parts, schema=schema).combine_chunks() if parts else schema.empty_table()
        position = np.zeros(len(rows), dtype=np.int64)  # where each row's id sits in `found`
        position[wanted[order]] = np.arange(len(wanted))
        return found.take(pa.array(position, mask=null))


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _replace(new: Path, target: Path) -> None:
    """`new` in `target`'s place: one rename for a file; for a folder the old one is moved aside first."""
    if target.is_dir():
        old = target.with_name(f".{target.name}.old")
        _remove(old)
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old)
    else:
        os.replace(new, target)


def _array(path: Path, dtype: type, n: int) -> np.memmap:
    """A checkpointed array: reopened when a run resumes, else created."""
    if path.exists():
        return np.load(path, mmap_mode="r+")
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n,))
