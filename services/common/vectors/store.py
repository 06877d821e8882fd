"""The one owner of the Milvus client: collections, aliases, writes, reads and catalogue iteration."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence, Set
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

import numpy as np
from pymilvus import MilvusClient, MilvusException

from services.common.errors import ClipstreamError
from services.common.filters import string_literal
from services.common.fingerprints import bits_apart
from services.common.messages import ModelRef, SegmentEmbedding, SegmentText, VideoDuplicates, is_backfill
from services.common.settings import CommonSettings
from services.common.vectors.errors import COLLECTION_NOT_FOUND, classify, released_collection
from services.common.vectors.layout import (
    ABOUT,
    DUPLICATES,
    FINGERPRINT_INDEX,
    MAX_TOPK,
    OUTPUT_FIELDS,
    OVERRIDES,
    SEGMENTS_ALIAS,
    VIDEO_FIELDS,
    VIDEOS_ALIAS,
    IndexConfig,
    cache_collection,
    create_cache,
    create_collection,
    create_duplicates,
    create_faces,
    create_fingerprint_index,
    create_overrides,
    create_text,
    faces_collection,
    fingerprint_pk,
    segment_pk,
    segments_collection,
    text_collection,
    text_pk,
    videos_collection,
)
from services.common.vectors.listing import WINDOW_ROWS, Cursor, lowest_bound, newest_first
from services.common.vectors.overrides import Override, Written, apply_patch, patched_fields
from services.common.vectors.rows import (
    check_row,
    completed_uploads,
    duplicate_pk,
    duplicate_row,
    face_rows,
    fingerprint_rows,
    segment_row,
    text_row,
    video_row,
)
from services.common.vectors.search import Searcher, SegmentHit

log = logging.getLogger(__name__)

# servers (Milvus Lite's among them) answer pings more often than every 5 min with GOAWAY "too_many_pings",
# which kills the channel every client in the process shares
_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 300_000, "grpc.keepalive_permit_without_calls": False}
T = TypeVar("T")
TEXT_FIELDS = ["video_id", "segment_index", "start_s", "end_s", "text", "lines"]
CACHE_EXACT_MAX = 2048  # cache lookups whose filter admits at most this many entries are scored exactly


class SegmentStore:
    def __init__(self, settings: CommonSettings, index: IndexConfig | None = None) -> None:
        token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
        self.client = MilvusClient(uri=settings.milvus_uri, token=token, grpc_options=_GRPC_OPTIONS)
        config = index or IndexConfig.from_settings(settings)
        self._searcher = Searcher(self.client, config, self._read, self.recovering, self.readable)
        self._known: set[str] = set()
        self._columns: dict[str, tuple[float, frozenset[str]]] = {}
        self._checked_at = 0.0
        self._loaded = False

    @property
    def index(self) -> IndexConfig:
        return self._searcher.index

    @index.setter
    def index(self, config: IndexConfig) -> None:
        """Reads and searches use the new index settings from the next call on (e.g. `exact_max_rows`)."""
        self._searcher.index = config

    # --- failures ---------------------------------------------------------------------------------------

    def recovering(self, op: Callable[[], T]) -> T:
        """Run `op`; after a Milvus restart (collections released, or not yet known) put things back and run
        it once more. What still fails is raised as a `TransientError` or a `PermanentError`."""
        try:
            try:
                return op()
            except MilvusException as exc:
                released = released_collection(exc)
                if released is not None:
                    self._load_served(released)
                elif getattr(exc, "code", None) == COLLECTION_NOT_FOUND:
                    self._known.clear()
                else:
                    raise
                log.warning("Milvus lost state: recovered, retrying once", extra={"error": str(exc)[:300]})
                return op()
        except MilvusException as exc:
            raise classify(exc) from exc

    def _load_served(self, name: str) -> None:
        names = {name} if name else {c for c in (self.served(SEGMENTS_ALIAS), self.served(VIDEOS_ALIAS)) if c}
        for collection in names:
            log.warning("loading released collection", extra={"collection": collection})
            self.client.load_collection(collection)

    def ready(self, every_s: float = 5.0) -> bool:
        """Whether the served collections can be read; loads any a restart released (checked every `every_s`)."""
        if time.monotonic() - self._checked_at < every_s:
            return self._loaded
        try:
            for alias in (SEGMENTS_ALIAS, VIDEOS_ALIAS):
                collection = self.served(alias)
                if collection and str(self.client.get_load_state(collection).get("state")) != "Loaded":
                    self._load_served(collection)
            self._loaded = True
        except (MilvusException, ClipstreamError) as exc:
            log.warning("Milvus not ready", extra={"error": str(exc)[:300]})
            self._loaded = False
        self._checked_at = time.monotonic()
        return self._loaded

    # --- layout -----------------------------------------------------------------------------------------

    def ensure_collections(self, model: ModelRef, spec: str = "", serve: bool = True) -> tuple[str, str]:
        """Create the model's segment and video collections (and the aliases, if none exist); idempotent.

        `spec` (how to load the model) is recorded on the collection, so search can embed queries for a
        collection whose model Triton does not serve yet."""
        names = segments_collection(model), videos_collection(model)
        if names[0] in self._known:
            return names
        about = json.dumps({"model": model.model_dump(), "spec": spec})
        for name, video_level in zip(names, (False, True), strict=True):
            if not self.client.has_collection(name):
                create_collection(self.client, name, model.dim, video_level, self.index, self._server_before_2_4())
                self.client.alter_collection_properties(name, properties={ABOUT: about})
                log.info("created collection", extra={"collection": name, "dim": model.dim})
            self.client.load_collection(name)
        aliases = self.client.list_aliases().get("aliases", [])
        if serve:
            for alias, name in zip((SEGMENTS_ALIAS, VIDEOS_ALIAS), names, strict=True):
                if alias not in aliases:
                    self.client.create_alias(collection_name=name, alias=alias)
        self._known.add(names[0])
        return names

    def _server_before_2_4(self) -> bool:
        found = re.match(r"v?(\d+)\.(\d+)", str(self.client.get_server_version()))
        return found is not None and (int(found.group(1)), int(found.group(2))) < (2, 4)

    def served(self, alias: str = SEGMENTS_ALIAS) -> str | None:
        """The collection an alias points at (None before anything is indexed)."""

        def lookup() -> str | None:
            if alias not in self.client.list_aliases().get("aliases", []):
                return None
            return str(self.client.describe_alias(alias)["collection_name"])

        return self.recovering(lookup)

    def exists(self, collection: str) -> bool:
        return bool(self.recovering(lambda: self.client.has_collection(collection)))

    def served_collection(self) -> str | None:
        return self.served(SEGMENTS_ALIAS)

    def model_of(self, collection: str) -> tuple[ModelRef, str]:
        described = self.recovering(lambda: self.client.describe_collection(collection))
        about = json.loads(described.get("properties", {}).get(ABOUT) or "{}")
        return ModelRef(**about["model"]), str(about.get("spec", ""))

    def switch_aliases(self, model: ModelRef) -> None:
        """Point both aliases at `model`'s collections: each switch is one atomic metadata operation."""
        for alias, name in ((SEGMENTS_ALIAS, segments_collection(model)), (VIDEOS_ALIAS, videos_collection(model))):
            if alias in self.client.list_aliases().get("aliases", []):
                self.client.alter_alias(collection_name=name, alias=alias)
            else:
                self.client.create_alias(collection_name=name, alias=alias)

    def columns(self, collection: str, max_age_s: float = 30.0) -> frozenset[str]:
        """The fields a collection (or the collection an alias serves) has: collections created before a
        layout change (free metadata) lack the new columns, and reads and writes leave those out."""
        cached = self._columns.get(collection)
        if cached is not None and time.monotonic() - cached[0] < max_age_s:
            return cached[1]
        described = self.recovering(lambda: self.client.describe_collection(collection))
        names = frozenset(f["name"] for f in described["fields"])
        self._columns[collection] = (time.monotonic(), names)
        return names

    def readable(self, collection: str, fields: Sequence[str]) -> list[str]:
        have = self.columns(collection)
        return [f for f in fields if f in have or "(" in f]  # count(*) and the like are not columns

    # --- writes -----------------------------------------------------------------------------------------

    def write_segments(self, model: ModelRef, embeddings: Sequence[SegmentEmbedding]) -> Written:
        """Upsert segment rows, drop rows beyond each video's current segment count, refresh video rows.

        Returns one embedding (the last written) of each upload whose every segment is now durable: the
        uploads this write completed or, on a replay, completes again; and the videos whose rows it removed
        again because the video was deleted after this upload (a late message must not resurrect it).
        Metadata patched after the upload is applied to the rows. Rows a server would refuse raise
        `PermanentError` before any write."""
        return self.recovering(lambda: self._write_honouring_overrides(model, embeddings))

    def _write_honouring_overrides(self, model: ModelRef, embeddings: Sequence[SegmentEmbedding]) -> Written:
        # read overrides before the write (to write patched rows) and again after it: a delete or patch that
        # landed in between saw none of this write's rows, so this write must apply it itself
        before = self._overrides({e.video_id for e in embeddings})
        stored = self._stored_versions(model, [e for e in embeddings if is_backfill(e.event_id)])
        # after a reindex's switch a backfill and a re-upload of one video can meet in one batch, in either order:
        # the upload's rows count as stored for the backfill's
        uploads = {(e.video_id, e.video.tenant): _version(e) for e in embeddings if not is_backfill(e.event_id)}

        def outdated(e: SegmentEmbedding) -> bool:
            return superseded(e, stored.get(e.video_id)) or superseded(e, uploads.get((e.video_id, e.video.tenant)))

        live = [
            apply_patch(e, before.get(e.video_id)) for e in embeddings if not _deleted(e, before) and not outdated(e)
        ]
        # a newer upload of the video is stored (a late backfill of an older version after a re-upload): this
        # write must not replace it
        older = {e.video_id for e in embeddings if outdated(e)} - {e.video_id for e in live}
        rows = {row["pk"]: row for row in (segment_row(e) for e in live)}  # last write of a key wins
        for row in rows.values():
            check_row(row)
        completed = self._write(model, live, rows) if live else []
        after = self._overrides({e.video_id for e in live}, strong=True)
        late = {e.video_id for e in live if _deleted(e, after)}
        for video_id in late:  # deleted while this write ran: remove what it wrote
            self._delete_rows(video_id, after[video_id].tenant)
        removed = late | older | {e.video_id for e in embeddings if _deleted(e, before)}
        repatch = [e for e in live if e.video_id not in removed and after.get(e.video_id) != before.get(e.video_id)]
        if repatch:
            patched = [apply_patch(e, after.get(e.video_id)) for e in repatch]
            self._write(model, patched, {r["pk"]: r for r in (segment_row(e) for e in patched)})
        return Written([e for e in completed if e.video_id not in removed], removed)

    def _stored_versions(self, model: ModelRef, embeddings: Sequence[SegmentEmbedding]) -> dict[str, StoredVersion]:
        """The version of each of these videos that the model's collection holds in the write's tenant: its
        first segment's upload time (s) and event id (Strong: a newer upload written a moment ago by another
        replica counts). Only a backfill's write is checked (`superseded`): uploads cost no read."""
        tenants = {e.video_id: e.video.tenant for e in embeddings}
        if not tenants:
            return {}
        segments = self.ensure_collections(model)[0]
        found = self.client.query(
            segments,
            filter=f"video_id in {json.dumps(sorted(tenants))} and segment_index == 0",
            output_fields=["video_id", "tenant", "uploaded_at", "event_id"],
            consistency_level="Strong",
        )
        return {
            r["video_id"]: StoredVersion(int(r["uploaded_at"]), r["event_id"])
            for r in found
            if r["tenant"] == tenants[r["video_id"]]
        }

    def _write(
        self, model: ModelRef, embeddings: Sequence[SegmentEmbedding], rows: dict[str, Any]
    ) -> list[SegmentEmbedding]:
        segments, videos = self.ensure_collections(model)
        self.client.upsert(segments, _fit(list(rows.values()), self.columns(segments)))
        latest = {e.video_id: e for e in embeddings}
        stored: dict[str, list[dict[str, Any]]] = {video_id: [] for video_id in latest}
        for row in self.client.query(
            segments,
            filter=f"video_id in {json.dumps(list(latest))}",
            output_fields=["pk", "video_id", "tenant", "event_id", "segment_index", "vector", "thumb"],
            consistency_level="Strong",  # sees the rows just upserted, and earlier batches' segments
        ):
            if row["tenant"] == latest[row["video_id"]].video.tenant:  # never touch another tenant's rows
                stored[row["video_id"]].append(row)
        stale = [r["pk"] for vid, rs in stored.items() for r in rs if r["segment_index"] >= latest[vid].segment_count]
        if stale:  # a re-upload cut into fewer segments
            self.client.delete(segments, ids=stale)
        video_rows = [video_row(model, latest[vid], found) for vid, found in stored.items()]
        self.client.upsert(videos, _fit(video_rows, self.columns(videos)))
        # a Strong read waits until the query nodes have applied these writes; reads at any level see
        # them from then on, so a `videos.indexed` sent after this returns is searchable at once
        self.client.query(
            videos,
            filter=f"pk in {json.dumps([r['pk'] for r in video_rows])}",
            output_fields=["pk"],
            consistency_level="Strong",
        )
        # the side collections after the video rows (a video's segments and its row appear together), still
        # before `videos.indexed`: its faces and fingerprints are searchable when it is announced
        self._write_prints(embeddings, latest)
        self._write_faces(model, embeddings, latest)
        return completed_uploads(embeddings, stored)

    def _write_faces(
        self, model: ModelRef, embeddings: Sequence[SegmentEmbedding], latest: dict[str, SegmentEmbedding]
    ) -> None:
        """The segments' faces replace what the faces collection of their embedding model (the segment's, or a
        face model given by path) held of those segments; rows past a video's segment count go."""
        by_model: dict[ModelRef, list[SegmentEmbedding]] = {}
        for e in embeddings:
            by_model.setdefault(e.face_model or model, []).append(e)
        for embedder, group in by_model.items():
            name = faces_collection(embedder)
            self._ensure(name, self._creating_faces(name, embedder.dim))
            segments: dict[tuple[str, str], set[int]] = {}
            for e in group:
                segments.setdefault((e.video_id, e.video.tenant), set()).add(e.segment_index)
            clauses = [
                f"(video_id == {json.dumps(v)} and tenant == {json.dumps(t)} and "
                f"(segment_index in {json.dumps(sorted(idx))} or segment_index >= {latest[v].segment_count}))"
                for (v, t), idx in segments.items()
            ]
            self.client.delete(name, filter=" or ".join(clauses))
            rows = [r for e in group for r in face_rows(e)]
            if rows:
                self.client.upsert(name, rows)
            self._settle(name)

    def _creating_faces(self, name: str, dim: int) -> Callable[[], None]:
        return lambda: create_faces(self.client, name, dim, self._server_before_2_4())

    def _settle(self, name: str) -> None:
        """One Strong read: the query nodes have applied this collection's writes and deletes, so reads at
        any level see them from now on (as the video write's Strong read does for the video collections)."""
        self.client.query(name, filter='pk != ""', output_fields=["pk"], limit=1, consistency_level="Strong")

    def faces_of(self, video_id: str, tenant: str, model: ModelRef) -> list[dict[str, Any]]:
        """A video's faces (segment index, box, score, vector), as the model's faces collection holds them."""
        name = faces_collection(model)
        if not self.recovering(lambda: self._opened(name)):
            return []
        scope = f"video_id == {json.dumps(video_id)} and tenant == {json.dumps(tenant)}"
        return self._read(name, scope, ["segment_index", "box", "score", "vector"])

    def nearest_faces(
        self, vector: Sequence[float], limit: int, expr: str, model: ModelRef
    ) -> list[tuple[float, dict[str, Any]]]:
        """The faces nearest a face's vector (same model), as (cosine, row), best first."""
        fields = ["video_id", "segment_index", "t", "box", "score"]
        return self._nearest_rows(faces_collection(model), vector, limit, expr, fields)

    def _nearest_rows(
        self, name: str, vector: Sequence[float], limit: int, expr: str, fields: list[str]
    ) -> list[tuple[float, dict[str, Any]]]:
        """A side collection's rows nearest one vector, as (cosine, row), best first; none before it exists."""
        if not self.recovering(lambda: self._opened(name)):
            return []
        found = self.recovering(
            lambda: self.client.search(
                name,
                data=[list(vector)],
                limit=min(limit, MAX_TOPK),
                filter=expr,
                output_fields=fields,
                search_params={"metric_type": "COSINE", "params": {"ef": max(limit, 64)}},
                consistency_level=self.index.consistency,
            )
        )
        return [(float(h["distance"]), dict(h["entity"])) for h in found[0]]

    def _write_prints(self, embeddings: Sequence[SegmentEmbedding], latest: dict[str, SegmentEmbedding]) -> None:
        """The segments' rows in the fingerprint index; rows of segments past a video's count, or of a segment
        that has no fingerprint now, are removed (a re-upload replaces what the index holds of the video)."""
        self._ensure(FINGERPRINT_INDEX, lambda: create_fingerprint_index(self.client, self._server_before_2_4()))
        rows, gone = [], []
        for e in embeddings:
            found = fingerprint_rows(e)
            rows += found
            if not found:
                gone += [fingerprint_pk(e.video_id, e.segment_index, kind) for kind in (0, 2)]
        if rows:
            self.client.upsert(FINGERPRINT_INDEX, rows)
        if gone:
            self.client.delete(FINGERPRINT_INDEX, ids=gone)
        past = " or ".join(
            f"(video_id == {json.dumps(v)} and tenant == {json.dumps(e.video.tenant)} and segment_index >= "
            f"{e.segment_count})"
            for v, e in latest.items()
        )
        self.client.delete(FINGERPRINT_INDEX, filter=past)

    def _overrides(self, video_ids: set[str], strong: bool = False) -> dict[str, Override]:
        """The overrides of these videos. Only the read after a write must be Strong (it decides whether the
        write stands); the read before it may lag, since whatever it misses the read after catches."""
        if not video_ids:
            return {}
        if not self._opened(OVERRIDES):  # nothing deleted or patched yet: one cheap check, no load
            return {}
        found = self.client.query(
            OVERRIDES,
            filter=f"pk in {json.dumps(sorted(video_ids))}",
            output_fields=["pk", "tenant", "deleted_at", "patched_at", "patch"],
            consistency_level="Strong" if strong else self.index.consistency,
        )
        return {r["pk"]: Override.from_row(r) for r in found}

    def _ensure_overrides(self) -> None:
        self._ensure(OVERRIDES, lambda: create_overrides(self.client))

    def _ensure(self, name: str, create: Callable[[], None]) -> None:
        """A side collection (overrides, verdicts, cache) created on first write, loaded once per process."""
        if name not in self._known:
            if not self.client.has_collection(name):
                create()
            self.client.load_collection(name)
            self._known.add(name)

    def _opened(self, name: str) -> bool:
        """Whether a side collection exists (loaded once per process); reads of one never written find nothing."""
        if name in self._known:
            return True
        if not self.client.has_collection(name):
            return False
        self.client.load_collection(name)
        self._known.add(name)
        return True

    def delete_video(self, video_id: str, tenant: str, deleted_at_ms: int) -> list[str]:
        """Remove a video from every model's collections, for good: the override (tombstone) is written
        first and read by every later write, so an embedding of the deleted upload still in flight either
        lands before this delete (and is removed by it) or sees the tombstone after its write (and removes
        its own rows). Returns the collections that held rows of it."""

        def run() -> list[str]:
            self._ensure_overrides()
            current = self._overrides({video_id}, strong=True).get(video_id) or Override(video_id, tenant)
            if current.tenant != tenant:
                return []  # the id is another tenant's: nothing of this tenant to delete
            tomb = current.deleted(max(deleted_at_ms, current.deleted_at))
            self.client.upsert(OVERRIDES, [tomb.to_row()])
            return self._delete_rows(video_id, tenant)

        return self.recovering(run)

    def _delete_rows(self, video_id: str, tenant: str) -> list[str]:
        expr = f"video_id == {json.dumps(video_id)} and tenant == {json.dumps(tenant)}"
        if self._opened(DUPLICATES):  # its verdicts, from either side
            either = f"(video_id == {json.dumps(video_id)} or other_id == {json.dumps(video_id)})"
            self.client.delete(DUPLICATES, filter=f"{either} and tenant == {json.dumps(tenant)}")
        if self._opened(FINGERPRINT_INDEX):
            self.client.delete(FINGERPRINT_INDEX, filter=expr)
        touched = []
        for name in self.client.list_collections():
            if name.startswith(("clipstream_text_", "clipstream_faces_")):
                self.client.load_collection(name)
                self.client.delete(name, filter=expr)
                self._settle(name)
            elif name.startswith(("clipstream_segments_", "clipstream_videos_")):
                self.client.load_collection(name)
                if self.client.query(name, filter=expr, output_fields=["pk"], limit=1, consistency_level="Strong"):
                    touched.append(name)
                self.client.delete(name, filter=expr)
        return touched

    def patch_video(self, video_id: str, tenant: str, patch: dict[str, Any], patched_at_ms: int) -> list[str]:
        """Title/creator/tags of a video's rows in every model's collections, rewritten in place with their
        vectors (no re-decoding, no re-embedding); recorded as an override that later writes apply."""

        def run() -> list[str]:
            self._ensure_overrides()
            current = self._overrides({video_id}, strong=True).get(video_id) or Override(video_id, tenant)
            if current.tenant != tenant:
                return []
            merged = current.patched(patch, patched_at_ms)
            self.client.upsert(OVERRIDES, [merged.to_row()])
            expr = f"video_id == {json.dumps(video_id)} and tenant == {json.dumps(tenant)}"
            touched = []
            for name in self.client.list_collections():
                if not name.startswith(("clipstream_segments_", "clipstream_videos_")):
                    continue
                self.client.load_collection(name)
                fields = sorted(self.columns(name, max_age_s=0))
                rows = list(self.client.query(name, filter=expr, output_fields=fields, consistency_level="Strong"))
                if rows:
                    self.client.upsert(name, _fit([r | patched_fields(merged.patch, r) for r in rows], set(fields)))
                    touched.append(name)
            return touched

        return self.recovering(run)

    # --- near-duplicate verdicts ------------------------------------------------------------------------

    def _ensure_duplicates(self) -> None:
        self._ensure(DUPLICATES, lambda: create_duplicates(self.client))

    def put_duplicates(self, found: VideoDuplicates) -> None:
        """Replace this video's verdicts under this model: a re-check (a replay, a re-upload) rewrites them."""

        def run() -> None:
            self._ensure_duplicates()
            mine = (
                f"video_id == {json.dumps(found.video_id)} and tenant == {json.dumps(found.tenant)} "
                f"and model_version == {json.dumps(found.model_version)}"
            )
            keep = {duplicate_pk(found.model_version, found.video_id, m.other_video_id) for m in found.matches}
            stale = [
                r["pk"] for r in self.client.query(DUPLICATES, filter=mine, output_fields=["pk"]) if r["pk"] not in keep
            ]
            if stale:
                self.client.delete(DUPLICATES, ids=stale)
            if found.matches:
                self.client.upsert(DUPLICATES, [duplicate_row(found, m) for m in found.matches])

        self.recovering(run)

    def duplicates_of(self, video_ids: Sequence[str], tenant: str | None) -> list[dict[str, Any]]:
        """Verdicts with any of these videos on either side (the tenant's only, when given)."""
        if not video_ids:
            return []

        def run() -> list[dict[str, Any]]:
            if not self._opened(DUPLICATES):
                return []
            ids = json.dumps(sorted(set(video_ids)))
            expr = f"(video_id in {ids} or other_id in {ids})"
            if tenant is not None:
                expr += f" and tenant == {json.dumps(tenant)}"
            fields = ["video_id", "other_id", "kind", "score", "detail", "model_version", "checked_at"]
            return list(
                self.client.query(
                    DUPLICATES, filter=expr, output_fields=fields, consistency_level=self.index.consistency
                )
            )

        return self.recovering(run)

    # --- generation cache -------------------------------------------------------------------------------

    def put_cache_entry(self, model: ModelRef, row: dict[str, Any]) -> None:
        name = cache_collection(model)

        def run() -> None:
            self._ensure(name, lambda: create_cache(self.client, name, model.dim, self._server_before_2_4()))
            self.client.upsert(name, _fit([row], self.columns(name)))

        self.recovering(run)

    def search_cache(
        self, model: ModelRef, vector: Sequence[float], expr: str, limit: int = 5
    ) -> list[tuple[float, dict[str, Any]]]:
        """The entries nearest a prompt vector among those the filter admits, as (cosine, row)."""
        name = cache_collection(model)

        def run() -> list[tuple[float, dict[str, Any]]]:
            if not self._opened(name):
                return []
            fields = self.readable(name, ["pk", "video_id", "provenance", "duration_s", "references"])
            # the exact-match parameters usually leave a few entries: score those exactly (HNSW under so
            # selective a filter walks most of the graph)
            few = self.client.query(
                name,
                filter=expr,
                output_fields=[*fields, "vector"],
                limit=CACHE_EXACT_MAX + 1,
                consistency_level=self.index.consistency,
            )
            if len(few) <= CACHE_EXACT_MAX:
                if not few:
                    return []
                matrix = np.asarray([r["vector"] for r in few], dtype=np.float32)
                matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
                query = np.asarray(vector, dtype=np.float32)
                scores = matrix @ (query / max(float(np.linalg.norm(query)), 1e-12))
                best = np.argsort(-scores)[:limit]
                return [(float(scores[i]), {f: few[i][f] for f in fields}) for i in best]
            hits = self.client.search(
                name,
                data=[list(vector)],
                limit=limit,
                filter=expr,
                output_fields=fields,
                search_params={"metric_type": "COSINE", "params": {"ef": max(64, limit)}},
                consistency_level=self.index.consistency,  # an entry only hits once its video is indexed
            )
            return [(float(h["distance"]), dict(h["entity"])) for h in hits[0]]

        return self.recovering(run)

    def delete_cache_entry(self, entry_id: str, tenant: str) -> bool:
        """Remove an entry from every model's cache; whether the tenant had it."""

        def run() -> bool:
            expr = f"pk == {json.dumps(entry_id)} and tenant == {json.dumps(tenant)}"
            found = False
            for name in self.client.list_collections():
                if name.startswith("clipstream_cache_"):
                    self.client.load_collection(name)
                    if self.client.query(name, filter=expr, output_fields=["pk"], consistency_level="Strong"):
                        self.client.delete(name, filter=expr)
                        # a Strong read waits until the delete is applied: lookups at any level miss it from now
                        self.client.query(name, filter=expr, output_fields=["pk"], consistency_level="Strong")
                        found = True
            return found

        return self.recovering(run)

    def delete(self, expr: str) -> None:
        """Delete the rows a filter built by `services.common.filters` selects, from every model's collections."""
        if not expr:
            raise ValueError("refusing to delete without a filter")

        def run() -> None:
            for name in self.client.list_collections():
                if name.startswith(("clipstream_segments_", "clipstream_videos_")):
                    self.client.delete(name, filter=expr)

        self.recovering(run)

    # --- reads ------------------------------------------------------------------------------------------

    def _read(self, collection: str, expr: str, fields: list[str], limit: int | None = None) -> list[dict[str, Any]]:
        extra = {} if limit is None else {"limit": limit}
        have = self.readable(collection, fields)
        return self.recovering(
            lambda: list(
                self.client.query(
                    collection, filter=expr, output_fields=have, consistency_level=self.index.consistency, **extra
                )
            )
        )

    def count(self, expr: str = "", collection: str = SEGMENTS_ALIAS) -> int:
        res = self._read(collection, expr, ["count(*)"])
        return int(res[0]["count(*)"])

    def rows(self, expr: str, fields: Sequence[str], collection: str = SEGMENTS_ALIAS) -> list[dict[str, Any]]:
        """Rows matching a filter built by `services.common.filters` (never from user strings)."""
        return self._read(collection, expr, list(fields))

    def iter_rows(
        self, collection: str = VIDEOS_ALIAS, fields: Sequence[str] = VIDEO_FIELDS, expr: str = "", batch: int = 100
    ) -> Iterator[list[dict[str, Any]]]:
        """The catalogue in batches, streamed with a query iterator: never one list of a whole collection."""
        have = self.readable(collection, fields)
        iterator = self.client.query_iterator(collection, filter=expr, output_fields=have, batch_size=batch)
        try:
            while rows := iterator.next():
                yield list(rows)
        finally:
            iterator.close()

    def video(self, video_id: str, expr: str = "") -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """A video's row and its segments (in order), or None; `expr` adds the caller's tenant scope."""
        scope = f"video_id == {json.dumps(video_id)}" + (f" and ({expr})" if expr else "")
        found = self._read(VIDEOS_ALIAS, scope, [*VIDEO_FIELDS, "segment_count", "thumb"])
        if not found:
            return None
        segments = self._read(SEGMENTS_ALIAS, scope, OUTPUT_FIELDS)
        return found[0], sorted(segments, key=lambda r: r["segment_index"])

    def latest_videos(
        self, expr: str, limit: int, after: Cursor | None = None, window_rows: int = WINDOW_ROWS
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """The newest videos of a scope (`expr`: the caller's tenant), newest first, with their middle thumbnail,
        and the cursor of the next page (None on the last). A scope of more than `window_rows` videos is read
        above an upload-time bound only (see `listing`), never whole."""
        if self.served(VIDEOS_ALIAS) is None:
            return [], None
        scope = _and(f"({expr})" if expr else "", after.clause() if after else "")
        total = self.count(scope, VIDEOS_ALIAS)
        if total == 0:
            return [], None
        window = scope
        if total > window_rows:
            since = lowest_bound(
                lambda at: self.count(_and(scope, f"uploaded_at >= {at}"), VIDEOS_ALIAS),
                min(limit, total),
                int(time.time()) + 86_400,
                window_rows,
            )
            window = _and(scope, f"uploaded_at >= {since}")
        page = newest_first(self._read(VIDEOS_ALIAS, window, ["video_id", "uploaded_at"], limit=MAX_TOPK), limit)
        if not page:  # deleted since the count
            return [], None
        listed = f"video_id in [{', '.join(string_literal(r['video_id']) for r in page)}]"
        fields = [*VIDEO_FIELDS, "segment_count", "thumb"]
        rows = newest_first(self._read(VIDEOS_ALIAS, _and(scope, listed), fields, limit=len(page)), limit)
        return rows, Cursor.of(rows[-1]) if total > len(page) and rows else None

    def video_vector(self, video_id: str, expr: str = "", collection: str = VIDEOS_ALIAS) -> list[float] | None:
        scope = f"video_id == {json.dumps(video_id)}" + (f" and ({expr})" if expr else "")
        found = self._read(collection, scope, ["vector"])
        return [float(x) for x in found[0]["vector"]] if found else None

    def nearest(
        self, vectors: Sequence[Sequence[float]], limit: int, expr: str, collection: str
    ) -> list[list[tuple[str, int, float]]]:
        """Per query vector, its `limit` nearest segments as (video id, segment index, cosine), best first."""
        return self._searcher.nearest(vectors, limit, expr, collection)

    # --- on-screen text ---------------------------------------------------------------------------------

    def write_text(self, encoder: str, dim: int, found: Sequence[tuple[SegmentText, Sequence[float] | None]]) -> None:
        """The segments' rows of the encoder's text collection: upserted for segments with text, removed for
        those without and past each video's segment count. Like segment writes, a video deleted before or
        while this writes keeps no rows (overrides read before and, Strong, after)."""

        def run() -> None:
            name = text_collection(encoder)
            self._ensure(name, lambda: create_text(self.client, name, dim, self._server_before_2_4()))
            self._ensure_overrides()
            before = self._overrides({t.video_id for t, _ in found})
            live = [(t, v) for t, v in found if not _text_deleted(t, before)]
            rows = [text_row(t, v) for t, v in live if t.lines and v is not None]
            for row in rows:
                check_row(row)
            if rows:
                self.client.upsert(name, rows)
            empty = [text_pk(t.video_id, t.segment_index) for t, _ in live if not t.lines]
            if empty:
                self.client.delete(name, ids=empty)
            latest = {t.video_id: t for t, _ in live}
            if latest:
                past = " or ".join(
                    f"(video_id == {json.dumps(v)} and tenant == {json.dumps(t.tenant)} and segment_index >= "
                    f"{t.segment_count})"
                    for v, t in latest.items()
                )
                self.client.delete(name, filter=past)
            after = self._overrides(set(latest), strong=True)
            for video_id, t in latest.items():
                if _text_deleted(t, after):  # deleted while this wrote: remove what it wrote
                    self.client.delete(
                        name, filter=f"video_id == {json.dumps(video_id)} and tenant == {json.dumps(t.tenant)}"
                    )
            self._settle(name)  # `videos.text` is published after this: a search at any level sees the words

        self.recovering(run)

    def search_text(
        self, encoder: str, vector: Sequence[float], limit: int, expr: str
    ) -> list[tuple[float, dict[str, Any]]]:
        """The segments whose words are nearest the query's embedding, as (cosine, row), best first; nothing
        before any text was stored."""
        return self._nearest_rows(text_collection(encoder), vector, limit, expr, TEXT_FIELDS)

    def segments_of(
        self, keys: Sequence[tuple[str, int]], model: ModelRef, expr: str, collection: str
    ) -> dict[tuple[str, int], dict[str, Any]]:
        """The rows of these segments (video id, index) of `model`'s collection that `expr` (the caller's
        filters) admits: only those rows, not every segment of their videos."""
        if not keys:
            return {}
        pks = json.dumps([segment_pk(v, i, model.version) for v, i in keys])
        rows = self._read(collection, _and(f"pk in {pks}", expr), OUTPUT_FIELDS)
        return {(r["video_id"], int(r["segment_index"])): r for r in rows}

    def text_of(
        self, encoder: str, keys: Sequence[tuple[str, int]], expr: str
    ) -> dict[tuple[str, int], dict[str, Any]]:
        """The text rows of these segments (video id, index) that have any, within `expr` (the caller's tenant)."""
        name = text_collection(encoder)
        if not keys or not self.recovering(lambda: self._opened(name)):
            return {}
        pks = json.dumps([text_pk(v, i) for v, i in keys])
        rows = self._read(name, _and(f"pk in {pks}", expr), TEXT_FIELDS)
        return {(r["video_id"], int(r["segment_index"])): r for r in rows}

    def nearest_fingerprints(
        self, vectors: Sequence[Sequence[float]], limit: int, expr: str
    ) -> list[list[tuple[str, int, int]]]:
        """Per query hash vector (`fingerprints.hash_vector`), its `limit` nearest hashes in the fingerprint index
        as (video id, segment index, bits apart), nearest first; nothing before any video was indexed. Strong: the
        videos indexed just before the one being checked are among those it must be compared with."""
        if not vectors or not self.recovering(lambda: self._opened(FINGERPRINT_INDEX)):
            return [[] for _ in vectors]
        found = self._searcher.nearest(vectors, limit, expr, FINGERPRINT_INDEX, consistency="Strong")
        return [[(video_id, index, bits_apart(cosine)) for video_id, index, cosine in hits] for hits in found]

    def best_segments(
        self,
        vectors: Sequence[Sequence[float]],
        limit: int,
        offset: int = 0,
        expr: str = "",
        collection: str = SEGMENTS_ALIAS,
    ) -> list[SegmentHit]:
        return self._searcher.best_segments(vectors, limit, offset, expr, collection)


_WARNED: set[frozenset[str]] = set()


def _fit(rows: list[dict[str, Any]], columns: Set[str]) -> list[dict[str, Any]]:
    """Rows without the fields an older collection lacks (their free metadata is not stored there)."""
    extra = set().union(*(r.keys() for r in rows)) - columns if rows else set()
    if not extra:
        return rows
    if (key := frozenset(extra)) not in _WARNED:  # once per process, not on every write
        _WARNED.add(key)
        log.warning("collection predates these fields: not stored", extra={"fields": sorted(extra)})
    return [{k: v for k, v in r.items() if k in columns} for r in rows]


def _and(*clauses: str) -> str:
    return " and ".join(c for c in clauses if c)


def _text_deleted(t: SegmentText, overrides: dict[str, Override]) -> bool:
    """As `_deleted`; a message without its registration time counts as older than any delete."""
    found = overrides.get(t.video_id)
    at = t.uploaded_at or datetime.fromtimestamp(0, UTC)
    return found is not None and found.tenant == t.tenant and found.deletes(at)


class StoredVersion(NamedTuple):
    uploaded_at: int  # s
    event_id: str  # the upload's, or the backfill's that wrote it


def _version(e: SegmentEmbedding) -> StoredVersion:
    """The version this write stores."""
    return StoredVersion(int(e.video.uploaded_at.timestamp()), e.event_id)


def superseded(e: SegmentEmbedding, stored: StoredVersion | None) -> bool:
    """Whether this is a backfill's write (a reindex's) of a video the collection already holds at a newer
    upload: a later second, or at its second an upload's own write (after a reindex's switch, a fresh upload goes
    straight to the new collection, and a backfill still in flight carries the version before it). An upload's
    own writes are never refused: Kafka's order per video settles them, and upload times from two gateways
    need not agree (a re-upload stamped a second earlier must still replace what it re-uploads)."""
    if stored is None or not is_backfill(e.event_id):
        return False
    at = _version(e).uploaded_at
    if stored.uploaded_at != at:
        return stored.uploaded_at > at
    return not is_backfill(stored.event_id)


def _deleted(e: SegmentEmbedding, overrides: dict[str, Override]) -> bool:
    found = overrides.get(e.video_id)
    return found is not None and found.tenant == e.video.tenant and found.deletes(e.video.uploaded_at)
