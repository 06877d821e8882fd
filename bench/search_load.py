"""Search under load over HTTP: QPS and p50/p99 at concurrency 1, 8 and 32 for text, image and filtered
queries, at 100k indexed segments, on Milvus Lite and on the `milvus==2.3.5` server, printed by one command.

Run: `.venv/bin/python -m bench.search_load [--segments 100000] [--backends lite standalone] [--seconds 20]`.
Everything runs privately inside a loopback-only network namespace (the 2.3.5 server binds every
interface): for each backend a fresh Milvus, the Triton server with the configured (else the toy) CLIP, the
catalogue loaded with `bench.search`'s synthetic segments (clustered unit vectors of the model's dimension,
10 tenants, realistic metadata), the real search API (`python -m services.search`, one worker) and `locust`
headless (`bench/locustfile.py`), closed loop: each user sends its next query when the last one answers.
Every API query is tenant-scoped (the key's tenant holds ~10 % of the segments); "filtered" adds one of
resolution >= 1080, a tag, duration <= 60 s; "video" is a 10-s excerpt (decoded in the API's killable child,
its frames embedded), at 1 and 8 users. Queries are embedded by Triton as users' are.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import recorded, rerun_in_loopback_netns
from bench.search import dataset, load
from services.common.settings import CommonSettings
from services.common.triton import ClipClient
from services.common.vectors import SegmentStore
from services.stack import manager
from services.stack.milvus import NETNS_ENV, private_milvus
from services.stack.process import http_ok
from services.stack.settings import StackSettings
from services.stack.triton import start_triton

KINDS = ("text", "image", "filtered", "video")
SEARCH_PORT = 38080
KEY = "bench-key"


def locust(url: str, kind: str, users: int, seconds: int, out: Path) -> tuple[float, ...]:
    """(QPS, p50 ms, p99 ms, failures) of one headless run."""
    prefix = out / f"{kind}-{users}"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "locust"),
            "-f",
            str(Path(__file__).with_name("locustfile.py")),
            "--headless",
            "--users",
            str(users),
            "--spawn-rate",
            str(users),
            "--run-time",
            f"{seconds}s",
            "--host",
            url,
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        env={**os.environ, "BENCH_QUERY": kind, "BENCH_API_KEY": KEY},
        check=False,
        capture_output=True,
        timeout=seconds + 120,
    )
    with open(f"{prefix}_stats.csv", newline="") as fh:
        total = next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")
    return (
        float(total["Requests/s"]),
        float(total["50%"]),
        float(total["99%"]),
        float(total["Failure Count"]),
    )


def run_backend(
    backend: str, segments: int, seconds: int, tmp: Path, kinds: list[str]
) -> list[tuple[str, int, tuple[float, ...]]]:
    with contextlib.ExitStack() as stack:
        uri = stack.enter_context(private_milvus(backend, tmp / "milvus"))  # type: ignore[arg-type]
        env = {"CLIPSTREAM_HOME": str(tmp / "home"), "CLIPSTREAM_MILVUS_URI": uri}
        os.environ.update(env)
        settings = StackSettings()
        triton = start_triton(settings, manager.ensure_model(settings))
        stack.callback(triton.stop)
        common = CommonSettings()
        _, model = ClipClient(common.triton_grpc_url).embed_texts(["warm up"])
        store = SegmentStore(common)
        store.ensure_collections(model, manager.ensure_model(settings), serve=True)
        vectors, meta = dataset(segments, np.random.default_rng(0), dim=model.dim)
        took = load(store, model, vectors, meta)
        print(f"{backend}: {segments} segments of {model.name} ({model.dim}-d) loaded and served in {took:.0f} s")
        search = subprocess.Popen(
            [sys.executable, "-m", "services.search"],
            env={
                **os.environ,
                "CLIPSTREAM_SEARCH_PORT": str(SEARCH_PORT),
                "CLIPSTREAM_SEARCH_HEALTH_PORT": str(SEARCH_PORT + 1),
                "CLIPSTREAM_SEARCH_API_KEYS": json.dumps({KEY: "t3"}),
                "CLIPSTREAM_LOG_LEVEL": "WARNING",
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stack.callback(search.kill)
        url = f"http://127.0.0.1:{SEARCH_PORT}"
        deadline = time.monotonic() + 120
        while not http_ok(f"{url}/readyz"):
            if time.monotonic() > deadline:
                raise SystemExit("the search API did not become ready")
            time.sleep(0.5)
        rows: list[tuple[str, int, tuple[float, ...]]] = []
        for kind in kinds:
            # a video query decodes and embeds ~40 frames: heavier, fewer users
            for users in (1, 8) if kind == "video" else (1, 8, 32):
                rows.append((kind, users, locust(url, kind, users, seconds, tmp)))
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--backends", nargs="+", default=["lite", "standalone"], choices=["lite", "standalone"])
    parser.add_argument("--seconds", type=int, default=20, help="each locust run")
    parser.add_argument("--queries", nargs="+", default=list(KINDS), choices=KINDS)
    args = parser.parse_args()
    if os.environ.get(NETNS_ENV) != "1":
        rerun_in_loopback_netns("bench.search_load")
        return
    results = {}
    for backend in args.backends:
        with tempfile.TemporaryDirectory() as tmp:
            results[backend] = run_backend(backend, args.segments, args.seconds, Path(tmp), args.queries)
    print(f"\n{'backend':10s} {'query':9s} {'users':>5s} {'QPS':>7s} {'p50 ms':>8s} {'p99 ms':>8s} {'failed':>6s}")
    if any(failed for rows in results.values() for _, _, (_, _, _, failed) in rows):
        print("(failed > 0: some requests were refused or errored; their latencies are in the figures)")
    for backend, rows in results.items():
        for kind, users, (qps, p50, p99, failed) in rows:
            print(f"{backend:10s} {kind:9s} {users:5d} {qps:7.1f} {p50:8.0f} {p99:8.0f} {failed:6.0f}")
    if len(results) == 2:
        lite, standalone = ({(k, u): r for k, u, r in results[b]} for b in ("lite", "standalone"))
        print(
            "\nQPS ratio standalone / lite: "
            + ", ".join(f"{k}@{u} {standalone[(k, u)][0] / max(lite[(k, u)][0], 1e-9):.2f}x" for k, u in lite)
        )


if __name__ == "__main__":
    with recorded("search_load"):
        main()
