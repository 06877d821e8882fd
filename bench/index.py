"""The indexer's write path: `SegmentStore.write_segments` against a bare upsert of the same rows.

Run: `.venv/bin/python -m bench.index [--backend standalone|lite] [--videos 10,50,200] [--batches 5]`.
Starts a private server like `bench.search` (default the `milvus==2.3.5` server in a loopback-only
network namespace). Per batch size it writes `--batches` batches of new videos (4 segments each, 512-d)
and prints segments/s of the bare upsert (the baseline: what Milvus itself costs) and of the indexer's
write (upsert, one Strong read of the batch's segments, video rows, and the Strong read that makes an
indexed video searchable before `videos.indexed` goes out), with their ratio. The first batch of a
run, which creates the collections and indexes, is not timed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.common import recorded, rerun_in_loopback_netns
from services.common.messages import ModelRef, SegmentEmbedding, VideoInfo
from services.common.settings import CommonSettings
from services.common.vectors import SegmentStore, segment_row
from services.stack.milvus import NETNS_ENV, private_milvus

DIM = 512
SEGMENTS = 4


def batch(model: ModelRef, name: str, videos: int, rng: np.random.Generator) -> list[SegmentEmbedding]:
    vectors = rng.normal(size=(videos * SEGMENTS, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    info = VideoInfo(uri="file:///bench.mp4", creator="bench", uploaded_at=datetime.now(UTC))
    return [
        SegmentEmbedding(
            event_id=name,
            video_id=f"{name}-{v}",
            segment_index=s,
            segment_count=SEGMENTS,
            start_s=2.0 * s,
            end_s=2.0 * s + 2.0,
            keyframe_times=[2.0 * s + 1.0],
            vector=vectors[v * SEGMENTS + s].tolist(),
            model=model,
            video=info,
            thumbnail=b"\xff\xd8",
        )
        for v in range(videos)
        for s in range(SEGMENTS)
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["standalone", "lite"], default="standalone")
    parser.add_argument("--videos", default="10,50,200", help="videos per batch, comma-separated")
    parser.add_argument("--batches", type=int, default=5)
    args = parser.parse_args()
    if args.backend == "standalone" and os.environ.get(NETNS_ENV) != "1":
        rerun_in_loopback_netns("bench.index")
        return
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        store = SegmentStore(CommonSettings(milvus_uri=stack.enter_context(private_milvus(args.backend, Path(tmp)))))
        print(f"Milvus {store.client.get_server_version()} ({args.backend}), {SEGMENTS} segments a video, {DIM}-d")
        model = ModelRef(name="bench", version="v1", dim=DIM)
        store.write_segments(model, batch(model, "warm", 1, rng))
        segments = store.ensure_collections(model)[0]
        print(f"{'videos/batch':>12s} {'upsert seg/s':>13s} {'indexer seg/s':>14s} {'ratio':>6s}")
        for videos in (int(v) for v in args.videos.split(",")):
            bare = ours = 0.0
            for b in range(args.batches):
                rows = [segment_row(e) for e in batch(model, f"bare{videos}-{b}", videos, rng)]
                start = time.perf_counter()
                store.client.upsert(segments, rows)
                bare += time.perf_counter() - start
                embeddings = batch(model, f"ours{videos}-{b}", videos, rng)
                start = time.perf_counter()
                store.write_segments(model, embeddings)
                ours += time.perf_counter() - start
            n = videos * SEGMENTS * args.batches
            print(f"{videos:12d} {n / bare:13.0f} {n / ours:14.0f} {bare / ours:6.2f}", flush=True)


if __name__ == "__main__":
    with recorded("index"):
        main()
