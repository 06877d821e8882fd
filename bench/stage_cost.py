"""What the on-screen text stage costs the pipeline's freshness, on the same cores: upload-to-searchable with
every stage running against the same load with the text stage stopped.

Run: `clipstream stack up` (with the clips under CLIPSTREAM_DECODER_ALLOWED_ROOTS), then `.venv/bin/python -m
bench.stage_cost [--rate R] [--minutes M]` from the folder the stack was started in; `clipstream stack down`
after (the text stage stays stopped). Open-loop uploads of the shared clips at R a second for M minutes (see
`bench.freshness`), p50/p95/p99 of `indexed_at - uploaded_at`, first with every stage, then with the OCR stage
and its supervisor stopped; the ratio of the two is the stage's cost. The text stage's own lag is printed after
the first run: how far reading words trails indexing.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from bench.common import clips, recorded
from bench.freshness import _quantile, open_loop
from services.common.filters import Filters
from services.common.messages import Topics
from services.common.settings import CommonSettings
from services.common.vectors import SegmentStore
from services.stack import manager
from services.stack.process import Proc
from services.stack.settings import StackSettings


def text_lag(common: CommonSettings) -> int:
    admin = AdminClient({"bootstrap.servers": common.kafka_bootstrap})
    parts = [
        TopicPartition(Topics.SEGMENTS, p) for p in admin.list_topics(timeout=30).topics[Topics.SEGMENTS].partitions
    ]
    group = "clipstream-ocr"
    committed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, parts)])[group].result()
    ends = admin.list_offsets({tp: OffsetSpec.latest() for tp in parts})
    return sum(
        max(0, ends[TopicPartition(Topics.SEGMENTS, tp.partition)].result().offset - max(tp.offset, 0))
        for tp in committed.topic_partitions
    )


def stop_text_stage(settings: StackSettings) -> None:
    supervisor = Proc("ocr", settings.run_dir).pid()
    child = manager.service_pid(settings, "ocr")
    for pid in (supervisor, child):
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while manager.service_pid(settings, "ocr") is not None and time.monotonic() < deadline:
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=0.3, help="uploads a second")
    parser.add_argument("--minutes", type=float, default=1.0)
    args = parser.parse_args()
    settings = StackSettings()
    common = settings.common
    stamp = int(time.time())
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(dir=Path.cwd() / ".clipstream") as tmp:
        paths = clips(Path(tmp))
        for label in ("every stage", "text stage stopped"):
            if label == "text stage stopped":
                print(f"text stage lag after the first run: {text_lag(common)} segments not yet read")
                stop_text_stage(settings)
            latencies = open_loop(common, paths, args.rate, args.minutes, f"bench-cost-{stamp}-{len(results)}")
            results[label] = latencies
            p50, p95, p99 = statistics.median(latencies), _quantile(latencies, 0.95), _quantile(latencies, 0.99)
            print(
                f"{label:20s} ({args.rate:.2f}/s, {len(latencies)} uploads): p50 {p50:5.2f} s  p95 {p95:5.2f} s  "
                f"p99 {p99:5.2f} s"
            )
        store = SegmentStore(common)
        for k in range(len(results)):
            for j in range(int(args.rate * args.minutes * 60 / len(paths)) + 1):
                store.delete(Filters(tenant=f"bench-cost-{stamp}-{k}-{j}").compile())
    on, off = results["every stage"], results["text stage stopped"]
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        print(f"{name}: {_quantile(on, q) / max(_quantile(off, q), 1e-9):.2f}x with the text stage running")


if __name__ == "__main__":
    with recorded("stage_cost"):
        main()
