"""Generation-cache lookup latency at 100k entries: the cache's own filtered vector search in Milvus against
a brute-force scan of the same entries in NumPy (the same filter as a mask), in the same run.

Run: `.venv/bin/python -m bench.cache [--entries 100000] [--dim 128] [--backend standalone|lite]` (a private
`milvus==2.3.5` server in a loopback-only network namespace, or Milvus Lite).
Entries are synthetic: random unit prompt vectors, 20 generators x 3 aspect ratios x 5 durations x 10
tenants. Each lookup asks for a stored entry's prompt plus noise with that entry's parameters, through
`SegmentStore.search_cache` and `cache.lookup_filter` (what `POST /v1/cache/lookup` runs after embedding
the prompt; the text embedding itself, ~ms on Triton, is not in these numbers). Prints p50/p99 of both and
whether they agree on the best entry.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import recorded, rerun_in_loopback_netns
from services.common.messages import ModelRef
from services.common.settings import CommonSettings
from services.common.vectors import SegmentStore
from services.common.vectors.layout import cache_collection
from services.search.cache import CacheEntry, Generation, entry_row, lookup_filter
from services.stack.milvus import NETNS_ENV, private_milvus

GENERATORS = [f"gen-{i}" for i in range(20)]
ASPECTS = ["16:9", "9:16", "1:1"]
DURATIONS = [4.0, 5.0, 6.0, 8.0, 10.0]
TENANTS = [f"t{i}" for i in range(10)]


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:6.1f} ms  p99 {p99 * 1000:6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--backend", choices=["standalone", "lite"], default="standalone")
    args = parser.parse_args()
    if args.backend == "standalone" and os.environ.get(NETNS_ENV) != "1":
        rerun_in_loopback_netns("bench.cache")
        return
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.entries, args.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    params = [
        (TENANTS[i % 10], GENERATORS[i % 20], ASPECTS[(i // 20) % 3], DURATIONS[(i // 60) % 5])
        for i in range(args.entries)
    ]
    model = ModelRef(name="bench-cache", version=f"v{int(time.time())}", dim=args.dim)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        store = SegmentStore(CommonSettings(milvus_uri=stack.enter_context(private_milvus(args.backend, Path(tmp)))))
        print(f"Milvus {store.client.get_server_version()}")
        started = time.perf_counter()
        rows = []
        for i, (tenant, generator, aspect, duration) in enumerate(params):
            entry = CacheEntry(
                uri=f"file:///generated/{i}.mp4",
                request=Generation(prompt=f"prompt {i}", generator=generator, duration_s=duration, aspect_ratio=aspect),
            )
            rows.append(entry_row(f"c{i:08d}", tenant, f"v{i}", entry, vectors[i].tolist()))
            if len(rows) == 5000 or i == args.entries - 1:
                if i < 5000:
                    store.put_cache_entry(model, rows.pop(0))  # creates and loads the collection
                store.client.insert(cache_collection(model), rows)
                rows = []
        store.client.flush(cache_collection(model))
        print(f"{args.entries} entries inserted in {time.perf_counter() - started:.0f} s")
        while True:  # lookups are measured on the built index, as a long-running cache has it
            described = store.client.describe_index(cache_collection(model), "vector")
            if int(described.get("indexed_rows", 0)) >= args.entries or described.get("state") == "Finished":
                break
            time.sleep(1)
        print(f"index built {time.perf_counter() - started:.0f} s after the first insert")
        ours, base, agree = [], [], 0
        tenant_of = np.asarray([p[0] for p in params])
        gen_of = np.asarray([p[1] for p in params])
        aspect_of = np.asarray([p[2] for p in params])
        duration_of = np.asarray([p[3] for p in params], dtype=np.float32)
        for k in range(args.lookups):
            i = int(rng.integers(args.entries))
            tenant, generator, aspect, duration = params[i]
            query = vectors[i] + 0.05 * rng.standard_normal(args.dim).astype(np.float32)
            query /= np.linalg.norm(query)
            request = Generation(prompt="x", generator=generator, duration_s=duration, aspect_ratio=aspect)
            t0 = time.perf_counter()
            found = store.search_cache(model, query.tolist(), lookup_filter(tenant, request))
            t1 = time.perf_counter()
            mask = (tenant_of == tenant) & (gen_of == generator) & (aspect_of == aspect) & (duration_of == duration)
            candidates = np.flatnonzero(mask)
            best = candidates[int(np.argmax(vectors[candidates] @ query))]
            t2 = time.perf_counter()
            if k >= 10:  # the first lookups warm the collection
                ours.append(t1 - t0)
                base.append(t2 - t1)
            agree += bool(found) and found[0][1]["pk"] == f"c{best:08d}"
        print(f"cache search (its filter, then exact or HNSW): {_percentiles(ours)}")
        print(f"brute force (NumPy scan + mask)         : {_percentiles(base)}")
        print(
            f"ratio p50 ours/brute force: {statistics.median(ours) / statistics.median(base):.2f}x; "
            f"same best entry in {agree}/{args.lookups} lookups"
        )


if __name__ == "__main__":
    with recorded("cache"):
        main()
