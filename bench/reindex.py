"""Reindex through the pipeline: videos/s with one and two replicas of the backfill's stages, and the freshness of
uploads while a reindex runs against idle, in the same run.

Run: `clipstream stack up`, then `.venv/bin/python -m bench.reindex [--copies 2] [--rate 0.3] [--minutes 1]` from
the folder the stack was started in. The catalogue: the shared clips `--copies` times (a tenant each). Each
reindex moves it to a new seeded random CLIP of the served model's architecture (embedded in-process by the
embedder: Triton serves the old model), times the first backfill event to the switch, and switches back.
Throughput: one replica of each stage, then a second decoder and embedder (a consumer each in the backfill
groups; the indexer is not the bottleneck). Freshness: `--rate` uploads/s for `--minutes`, registration to
`videos.indexed`, idle and then while a reindex runs (goal: p99 within 2x of idle). On 2 cores every replica
shares the same CPU: the second replicas show what a replica buys with no core of its own; a cluster gives
each one its own.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench.common import clips, recorded
from bench.freshness import _quantile, burst, open_loop
from bench.scaleout import SECOND_PORT, second_replica
from services.clip.loader import load_clip
from services.clip.random_model import write_random_clip
from services.common.filters import Filters
from services.common.settings import CommonSettings
from services.common.vectors import SegmentStore
from services.indexer.reindex import Control, Reindex, ReindexReport
from services.indexer.stage_groups import stage_groups
from services.intake.registration import register

SETTLE_S = 6.0


def reindex_once(common: CommonSettings, scratch: Path, seed: int) -> tuple[ReindexReport, float]:
    """Move the catalogue to a new random CLIP, timed; then serve the old model again."""
    store = SegmentStore(common)
    old_model, _ = store.model_of(store.served() or "")
    spec = write_random_clip(scratch / f"model-{seed}", seed=seed, name=f"clip-bench-{seed}")
    run = Reindex(
        store,
        common,
        load_clip(str(spec)).ref,
        str(spec),
        Control(in_flight=256),
        settle_s=SETTLE_S,
        drain=stage_groups(),
    )
    started = time.monotonic()
    report = run.run()
    wall = time.monotonic() - started - SETTLE_S  # the settle wait after the switch is not work
    store.switch_aliases(old_model)
    time.sleep(SETTLE_S)
    return report, wall


def freshness(latencies: list[float]) -> str:
    p50, p99 = statistics.median(latencies), _quantile(latencies, 0.99)
    return f"p50 {p50:5.1f} s  p99 {p99:5.1f} s  ({len(latencies)} uploads)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=2, help="the shared clips this many times make the catalogue")
    parser.add_argument("--rate", type=float, default=0.3, help="fresh uploads a second in the freshness runs")
    parser.add_argument("--minutes", type=float, default=1.0)
    args = parser.parse_args()
    common = CommonSettings()
    stamp = int(time.time())
    tenants = [f"bench-reindex-{stamp}-{c}" for c in range(args.copies)]
    with tempfile.TemporaryDirectory(dir=Path.cwd() / ".clipstream") as tmp:
        scratch = Path(tmp)
        paths = clips(scratch)
        for tenant in tenants:
            burst(common, [register(p, tenant=tenant) for p in paths])
        store = SegmentStore(common)
        catalogue = store.count(collection="clipstream_videos")
        print(f"catalogue: {catalogue} videos ({len(paths)} clips x {args.copies} tenants and what was there)\n")

        rows = []
        one, wall = reindex_once(common, scratch, seed=101)
        rows.append(("1 decoder, 1 embedder, 1 indexer", one, wall))
        extra = [second_replica("decoder", SECOND_PORT), second_replica("embedder", SECOND_PORT + 1)]
        try:
            two, wall2 = reindex_once(common, scratch, seed=102)
        finally:
            for proc in extra:
                proc.terminate()
                proc.wait(30)
        rows.append(("2 decoders, 2 embedders, 1 indexer", two, wall2))
        print("reindex throughput (the whole catalogue, first backfill event to the switch):")
        for name, report, seconds in rows:
            print(
                f"  {name:36s} {report.videos:4d} videos in {seconds:6.1f} s: {report.videos / seconds:5.2f} videos/s"
                f"  (failed {len(report.failed)}, switched {report.switched})"
            )
        print(f"  two replicas / one: {rows[1][1].videos / rows[1][2] / (rows[0][1].videos / rows[0][2]):.2f}x\n")

        idle = open_loop(common, paths, args.rate, args.minutes, f"bench-reindex-idle-{stamp}")
        during: list[float] = []
        reports: list[tuple[ReindexReport, float]] = []
        runner = threading.Thread(target=lambda: reports.append(reindex_once(common, scratch, seed=103)))
        runner.start()
        time.sleep(2)
        during = open_loop(common, paths, args.rate, args.minutes, f"bench-reindex-busy-{stamp}")
        runner.join()
        print(f"freshness of fresh uploads at {args.rate}/s for {args.minutes} min (registration to indexed):")
        print(f"  idle            {freshness(idle)}")
        print(f"  during reindex  {freshness(during)}")
        print(f"  p99 during / idle: {_quantile(during, 0.99) / _quantile(idle, 0.99):.2f}x (goal <= 2x)")
        if reports:
            report, seconds = reports[0]
            print(f"  the reindex meanwhile: {report.videos} videos in {seconds:.1f} s")
        for tenant in [*tenants, f"bench-reindex-idle-{stamp}", f"bench-reindex-busy-{stamp}"]:
            store.delete(Filters(tenant=tenant).compile())


if __name__ == "__main__":
    with recorded("reindex"):
        main()
