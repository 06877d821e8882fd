"""Freshness under load: upload-to-searchable latency when uploads arrive at a fixed rate, at several shares
of the pipeline's capacity, with the consumer lag of every stage over time.

Run: `clipstream stack up`, then `.venv/bin/python -m bench.freshness [--levels 0.5 0.8 1.0 1.2]
[--minutes 2] [--capacity V]` from the folder the stack was started in (the clips must be under
CLIPSTREAM_DECODER_ALLOWED_ROOTS). Capacity (videos/s) is measured first unless given: a burst of every
clip at once, divided by the time to the last `videos.indexed`. Then, for each level, an open-loop
generator publishes uploads at level x capacity for the given minutes (the clips in turn, each upload a new
video: another tenant), regardless of how the pipeline keeps up, and waits for every one of them to be
indexed. Prints, per level: p50/p95/p99 of `indexed_at - uploaded_at`; and every 10 s the lag (messages
not yet consumed) of each stage's consumer group. The pipeline exports the same latency as the histogram
`clipstream_freshness_seconds` (the indexer observes it when it publishes `videos.indexed`).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from bench.common import clips, recorded
from services.common.filters import Filters
from services.common.kafka.publisher import Publisher
from services.common.messages import Topics, VideoUploaded
from services.common.settings import CommonSettings, stage_group_id
from services.common.vectors import SegmentStore
from services.intake.registration import register
from services.intake.watch import UploadWatch

HEALTH_PORTS = {"decoder": 9101, "embedder": 9102, "indexer": 9103}  # the stack's defaults (CLIPSTREAM_*_HEALTH_PORT)
GROUPS = {
    "decoder": (stage_group_id("decoder"), Topics.UPLOADED),
    "embedder": (stage_group_id("embedder"), Topics.SEGMENTS),
    "indexer": (stage_group_id("indexer"), Topics.EMBEDDINGS),
}


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def lags(admin: AdminClient, consumer_probe: dict[str, list[TopicPartition]]) -> dict[str, int]:
    """Messages each stage's group has not consumed yet (high watermark minus committed offset)."""
    found = {}
    for stage, (group, topic) in GROUPS.items():
        request = [ConsumerGroupTopicPartitions(group, consumer_probe[topic])]
        committed = admin.list_consumer_group_offsets(request)[group].result().topic_partitions
        ends = admin.list_offsets({tp: OffsetSpec.latest() for tp in consumer_probe[topic]})
        total = 0
        for tp in committed:
            end = ends[TopicPartition(topic, tp.partition)].result().offset
            total += max(0, end - max(tp.offset, 0))
        found[stage] = total
    return found


class LagSampler(threading.Thread):
    def __init__(self, common: CommonSettings, every_s: float = 10.0) -> None:
        super().__init__(daemon=True)
        self.admin = AdminClient({"bootstrap.servers": common.kafka_bootstrap})
        meta = self.admin.list_topics(timeout=30)
        self.partitions = {
            topic: [TopicPartition(topic, p) for p in meta.topics[topic].partitions] for _, topic in GROUPS.values()
        }
        self.every_s = every_s
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.stop = threading.Event()
        self.started = time.monotonic()

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            self.samples.append((time.monotonic() - self.started, lags(self.admin, self.partitions)))


def busy_seconds() -> dict[str, float]:
    """Each stage's time spent handling batches so far (its `clipstream_batch_seconds_sum`)."""
    found = {}
    for stage, port in HEALTH_PORTS.items():
        port = int(os.environ.get(f"CLIPSTREAM_{stage.upper()}_HEALTH_PORT", port))
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        match = re.search(rf'^clipstream_batch_seconds_sum{{service="{stage}"}} (\S+)$', text, re.M)
        found[stage] = float(match[1]) if match else 0.0
    return found


def burst(common: CommonSettings, uploads: list[VideoUploaded]) -> float:
    """Capacity (videos/s) from every clip at once; prints each stage's busy share and per-replica capacity."""
    watch = UploadWatch(common)
    publisher = Publisher(common, "bench")
    before = busy_seconds()
    started = time.time()
    for u in uploads:
        publisher.publish(Topics.UPLOADED, u)
    publisher.flush()
    done = watch.wait([u.event_id for u in uploads], 1800)
    watch.close()
    wall = max(e.indexed_at.timestamp() for e in done.indexed.values()) - started
    time.sleep(1)
    busy = {s: t - before[s] for s, t in busy_seconds().items()}
    print(f"burst: {len(uploads)} videos in {wall:.1f} s; per stage (one replica each):")
    for stage, seconds in sorted(busy.items(), key=lambda x: -x[1]):
        print(
            f"  {stage:9s} busy {seconds:6.1f} s ({seconds / wall:4.0%} of the wall time): "
            f"{len(uploads) / max(seconds, 1e-9):6.2f} videos/s a replica when never idle"
        )
    print(f"  bottleneck: {max(busy, key=lambda s: busy[s])}")
    return len(uploads) / wall


def open_loop(common: CommonSettings, paths: list[Path], rate: float, minutes: float, tag: str) -> list[float]:
    """Publish at `rate` uploads/s for `minutes`, then wait for all; the latencies (s) of those indexed."""
    watch = UploadWatch(common)
    publisher = Publisher(common, "bench")
    events: list[str] = []
    count = int(rate * minutes * 60)
    started = time.monotonic()
    for i in range(count):
        time.sleep(max(0.0, started + i / rate - time.monotonic()))
        upload = register(paths[i % len(paths)], tenant=f"{tag}-{i // len(paths)}")
        publisher.publish(Topics.UPLOADED, upload)
        events.append(upload.event_id)
    publisher.flush()
    done = watch.wait(events, 1800)
    watch.close()
    if len(done.indexed) < len(events):
        print(f"  {len(events) - len(done.indexed)} of {len(events)} not indexed within 30 min")
    return [(e.indexed_at - e.uploaded_at).total_seconds() for e in done.indexed.values() if e.uploaded_at]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", type=float, nargs="+", default=[0.5, 0.8, 1.0, 1.2])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--capacity", type=float, default=None, help="videos/s; measured by a burst if absent")
    args = parser.parse_args()
    common = CommonSettings()
    stamp = int(time.time())
    with tempfile.TemporaryDirectory(dir=Path.cwd() / ".clipstream") as tmp:
        paths = clips(Path(tmp))
        capacity = args.capacity or burst(common, [register(p, tenant=f"bench-cap-{stamp}") for p in paths])
        print(f"capacity: {capacity:.2f} videos/s ({len(paths)} clips in a burst)")
        sampler = LagSampler(common)
        sampler.start()
        rows = []
        for level in args.levels:
            mark = len(sampler.samples)
            latencies = open_loop(
                common, paths, capacity * level, args.minutes, f"bench-fresh-{stamp}-{round(level * 100)}"
            )
            peak = {s: max((x[1][s] for x in sampler.samples[mark:]), default=0) for s in GROUPS}
            rows.append((level, capacity * level, latencies, peak))
            print(
                f"{level:4.0%} of capacity ({capacity * level:.2f}/s, {len(latencies)} uploads): "
                f"p50 {statistics.median(latencies):6.1f} s  p95 {_quantile(latencies, 0.95):6.1f} s  "
                f"p99 {_quantile(latencies, 0.99):6.1f} s  peak lag {peak}"
            )
        sampler.stop.set()
        print("\nlag over time (messages not yet consumed):")
        print(f"{'t s':>6s} " + " ".join(f"{s:>9s}" for s in GROUPS))
        for t, lag in sampler.samples:
            print(f"{t:6.0f} " + " ".join(f"{lag[s]:9d}" for s in GROUPS))
        store = SegmentStore(common)
        store.delete(Filters(tenant=f"bench-cap-{stamp}").compile())
        for level in args.levels:
            for k in range(int(capacity * level * args.minutes * 60 / len(paths)) + 1):
                store.delete(Filters(tenant=f"bench-fresh-{stamp}-{round(level * 100)}-{k}").compile())


if __name__ == "__main__":
    with recorded("freshness"):
        main()
