"""Search quality and latency at catalogue scale: recall@10 against exact brute force, p50/p99 latency.

Run: `.venv/bin/python -m bench.search [--backend standalone|lite] [--sizes 100000,1000000]`.
It starts a private server in a temporary folder: by default the `milvus==2.3.5` standalone server
(inside a loopback-only network namespace, as it binds every interface), or Milvus Lite; `--uri` uses a
running one instead. For each size it loads that many synthetic 512-d segment vectors (clustered,
normalised; 10 segments per video) with realistic metadata into the real collection layout, waits until
the query nodes serve every segment through its built index, then runs the same queries with no filter
and with each filter kind, reporting recall@10 of the raw vector search against numpy brute force over
the rows the filter admits (segments), and of our best-segment-per-video search against the exact top 10
videos, with p50/p99 latency of each, at the configured read consistency (and, for comparison, Strong).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from pymilvus import MilvusException

from bench.common import recorded, rerun_in_loopback_netns
from services.common.filters import Filters
from services.common.messages import MAX_TAGS, ModelRef
from services.common.settings import CommonSettings
from services.common.vectors import METADATA, TAG_FIELDS, IndexConfig, SegmentStore, segments_collection
from services.stack.milvus import NETNS_ENV, private_milvus

DIM = 512
QUERIES = 100
STRONG_QUERIES = 20
EPOCH0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
YEAR = 365 * 86400


def dataset(n: int, rng: np.random.Generator, dim: int = DIM) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    centres = rng.normal(size=(max(16, n // 200), dim)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    videos = n // 10
    video = np.arange(n) // 10
    meta = {
        "video": video,
        "tenant": rng.integers(0, 10, videos)[video],
        "creator": rng.integers(0, 1000, videos)[video],
        "uploaded_at": (EPOCH0 + rng.integers(0, YEAR, videos))[video],
        "height": rng.choice([240, 360, 480, 720, 1080, 2160], videos)[video],
        "duration": rng.uniform(5, 600, videos)[video].astype(np.float32),
        "tags": rng.integers(0, 50, (videos, 3))[video],
    }
    return vectors, meta


FILTERS = {
    "none": (Filters(), lambda m: np.ones(len(m["video"]), bool)),
    "tenant (~10%)": (Filters(tenant="t3"), lambda m: m["tenant"] == 3),
    "creator (~0.1%)": (Filters(creator="c42"), lambda m: m["creator"] == 42),
    "upload time range (~25%)": (
        Filters(
            uploaded_after=datetime.fromtimestamp(EPOCH0 + YEAR // 4, UTC),
            uploaded_before=datetime.fromtimestamp(EPOCH0 + YEAR // 2, UTC),
        ),
        lambda m: (m["uploaded_at"] >= EPOCH0 + YEAR // 4) & (m["uploaded_at"] < EPOCH0 + YEAR // 2),
    ),
    "resolution >= 1080 (~33%)": (Filters(min_height=1080), lambda m: m["height"] >= 1080),
    "duration <= 60 s (~10%)": (Filters(max_duration_s=60), lambda m: m["duration"] <= 60),
    "tag (~6%)": (Filters(tags=["tag7"]), lambda m: (m["tags"] == 7).any(axis=1)),
}


def load(store: SegmentStore, model: ModelRef, vectors: np.ndarray, meta: dict[str, np.ndarray]) -> float:
    collection = store.ensure_collections(model, serve=False)[0]
    start = time.perf_counter()
    batch = 5000
    for lo in range(0, len(vectors), batch):
        rows = []
        as_lists = vectors[lo : lo + batch].tolist()
        for i in range(lo, min(lo + batch, len(vectors))):
            v = int(meta["video"][i])
            tags = [f"tag{t}" for t in dict.fromkeys(meta["tags"][i].tolist())]
            rows.append(
                {
                    "pk": f"v{v}#{i % 10:05d}",
                    "video_id": f"v{v}",
                    "tenant": f"t{meta['tenant'][i]}",
                    "creator": f"c{meta['creator'][i]}",
                    "title": "",
                    "uri": "",
                    "uploaded_at": int(meta["uploaded_at"][i]),
                    "width": int(meta["height"][i] * 16 // 9),
                    "height": int(meta["height"][i]),
                    "duration_s": float(meta["duration"][i]),
                    **dict(zip(TAG_FIELDS, tags + [""] * (MAX_TAGS - len(tags)), strict=True)),
                    "segment_index": i % 10,
                    "start_s": 0.0,
                    "end_s": 1.0,
                    "keyframe_s": 0.5,
                    "event_id": "",
                    "thumb": "",
                    METADATA: {},
                    "vector": as_lists[i - lo],
                }
            )
        store.client.insert(collection, rows)
    store.client.flush(collection)
    wait_until_served(store, collection, len(vectors))
    return time.perf_counter() - start


def wait_until_served(store: SegmentStore, collection: str, rows: int) -> None:
    """Time searches against built indexes: every row indexed, then reloaded so that query nodes hold
    sealed, indexed segments (a 2.3 server otherwise keeps searching growing segments, whose interim
    index loses recall, well after describe_index says the build finished)."""
    client = store.client
    deadline = time.monotonic() + 3600
    while True:
        info = client.describe_index(collection, index_name="vector")
        if int(info.get("indexed_rows", rows)) >= rows and int(info.get("pending_index_rows", 0)) == 0:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"index build did not finish: {info}")
        time.sleep(2)
    try:
        client.list_loaded_segments(collection)
    except (MilvusException, grpc.RpcError):  # Milvus Lite does not list segments: it searches what it indexed
        print("  served: Milvus Lite, searching what it indexed")
        return
    client.release_collection(collection)
    client.load_collection(collection)
    while True:
        segments = client.list_loaded_segments(collection)
        unindexed = [s for s in segments if not s.index_name]
        if sum(s.num_rows for s in segments) >= rows and not unindexed:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"segments not served with their index: {segments}")
        time.sleep(2)
    print(f"  served: {len(segments)} sealed segments, {sum(s.num_rows for s in segments)} rows, all indexed")


def run_size(store: SegmentStore, n: int, rng: np.random.Generator, queries_n: int) -> None:
    consistency = store.index.consistency
    vectors, meta = dataset(n, rng)
    model = ModelRef(name="bench", version=f"n{n}", dim=DIM)
    collection = segments_collection(model)
    if store.client.has_collection(collection):
        store.client.drop_collection(collection)
    seconds = load(store, model, vectors, meta)
    print(
        f"\n{n} vectors x {DIM}-d loaded and indexed in {seconds:.0f}s ({n / seconds:.0f} rows/s), "
        f"{store.index.index_type}, {queries_n} queries, limit 10"
    )
    queries = vectors[rng.integers(0, n, queries_n)] + 0.3 * rng.normal(size=(queries_n, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    scores = vectors @ queries.T  # exact scores of every row for every query: the ground truth
    header = (
        f"{'filter':28s} {'admits':>7s} | raw search: {'recall@10':>9s} {'p50 ms':>7s} {'p99 ms':>7s} "
        f"| ours, best segment per video: {'recall@10':>9s} {'p50 ms':>7s} {'p99 ms':>7s}"
    )
    print(f"consistency {consistency} (the product's default)\n{header}")
    for name, (filters, admit) in FILTERS.items():
        print(f"{name:28s} " + measure(store, collection, filters, admit(meta), meta, queries, scores), flush=True)
    if consistency != "Strong":  # its cost is a wait for the server's time tick, the same for any filter
        store.index = dataclasses.replace(store.index, consistency="Strong")
        print(f"consistency Strong, first {STRONG_QUERIES} queries\n{header}")
        few = queries[:STRONG_QUERIES]
        print(f"{'none':28s} " + measure(store, collection, Filters(), np.ones(n, bool), meta, few, scores))
        store.index = dataclasses.replace(store.index, consistency=consistency)
    store.client.drop_collection(collection)
    store.client.drop_collection(collection.replace("segments", "videos", 1))


def recall(found: set[Any], exact: set[Any]) -> float:
    """Share of the true top-k found; with nothing to find, 1 only if nothing was returned."""
    return len(found & exact) / len(exact) if exact else float(not found)


def measure(
    store: SegmentStore,
    collection: str,
    filters: Filters,
    mask: np.ndarray,
    meta: dict[str, np.ndarray],
    queries: np.ndarray,
    scores: np.ndarray,
) -> str:
    expr = filters.compile()
    recalls: list[float] = []
    video_recalls: list[float] = []
    raw: list[float] = []
    grouped: list[float] = []
    for qi, q in enumerate(queries):
        admitted = np.where(mask, scores[:, qi], -np.inf)
        k = min(10, int(mask.sum()))
        exact = set(np.argpartition(-admitted, k - 1)[:k].tolist()) if k else set()
        start = time.perf_counter()
        hits = store.client.search(
            collection,
            data=[q.tolist()],
            limit=10,
            filter=expr,
            output_fields=["pk"],
            search_params={"metric_type": "COSINE", "params": store.index.search_params(10)},
            consistency_level=store.index.consistency,
        )
        raw.append(time.perf_counter() - start)
        found = {int(h["entity"]["pk"].split("#")[0][1:]) * 10 + int(h["entity"]["pk"][-5:]) for h in hits[0]}
        recalls.append(recall(found, exact))
        start = time.perf_counter()
        videos = store.best_segments([q.tolist()], 10, expr=expr, collection=collection)
        grouped.append(time.perf_counter() - start)
        per_video = np.full(int(meta["video"][-1]) + 1, -np.inf)
        np.maximum.at(per_video, meta["video"], admitted)
        k = min(10, int(np.isfinite(per_video).sum()))
        exact_videos = {f"v{v}" for v in np.argpartition(-per_video, k - 1)[:k]} if k else set()
        video_recalls.append(recall({h.video_id for h in videos}, exact_videos))

    def ms(xs: list[float], p: int) -> float:
        return 1000 * float(np.percentile(xs, p))

    return (
        f"{mask.mean():7.2%} |             {np.mean(recalls):9.3f} {ms(raw, 50):7.1f} {ms(raw, 99):7.1f} "
        f"|                               {np.mean(video_recalls):9.3f} {ms(grouped, 50):7.1f} {ms(grouped, 99):7.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--backend", choices=["standalone", "lite"], default="standalone")
    parser.add_argument("--uri", help="a running Milvus instead of a private server")
    parser.add_argument("--queries", type=int, default=QUERIES)
    parser.add_argument("--ef", type=int, default=CommonSettings().milvus_search_ef, help="HNSW search breadth")
    args = parser.parse_args()
    if args.uri is None and args.backend == "standalone" and os.environ.get(NETNS_ENV) != "1":
        rerun_in_loopback_netns("bench.search")
        return
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        uri = args.uri or stack.enter_context(private_milvus(args.backend, Path(tmp)))
        settings = CommonSettings(milvus_uri=uri)
        store = SegmentStore(settings, dataclasses.replace(IndexConfig.from_settings(settings), search_ef=args.ef))
        print(f"Milvus {store.client.get_server_version()} at {uri}")
        for n in (int(s) for s in args.sizes.split(",")):
            run_size(store, n, rng, args.queries)


if __name__ == "__main__":
    with recorded("search"):
        main()
