"""QC throughput beside ingestion: how many videos a second one QC replica checks, against how many the
pipeline indexes, in the same run on a running local stack.

Run: `clipstream stack up`, then `.venv/bin/python -m bench.qc [--videos 24]` from the folder the stack was
started in (the clips and reference images are written under `.clipstream/bench-qc/`, inside the default
allowed root). Each clip is two 3-s toy-world shots with the first shot's caption as its prompt; every other
clip also names four reference images. All clips are published at once; prints

- ingestion: videos (and video-seconds) a second from the first publish to the last `videos.indexed`;
- the QC stage's lag behind indexing (its `checked_at` minus `indexed_at`, p50/p95) while both run;
- one QC replica's capacity: the stage's own check (`QualityChecker.check`: read the segments, embed prompt
  and references through Triton, run the checks) over the same events, one after another, in this process;
- the ratio of QC capacity to ingestion throughput (above 1: one replica keeps up).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from PIL import Image

from bench.common import recorded
from services.clip.toy.world import all_scenes, layout, render
from services.common.kafka.config import consumer_config
from services.common.messages import Topics, VideoIndexed, VideoQc, VideoUploaded
from services.common.triton import ClipClient
from services.common.vectors import METADATA, SegmentStore
from services.intake.registration import register
from services.intake.watch import publish_and_wait
from services.media.synthetic import write_world_clip
from services.qc.service import QualityChecker
from services.qc.settings import QcSettings

SCENE_S = 3.0


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def uploads(folder: Path, count: int, tenant: str) -> list[VideoUploaded]:
    scenes = all_scenes()
    made = []
    for i in range(count):
        first, second = scenes[(7 * i) % len(scenes)], scenes[(7 * i + 3) % len(scenes)]
        path = write_world_clip(folder / f"qc-{i:03d}.mp4", [first, second], scene_s=SCENE_S, seed=900 + i)
        metadata: dict[str, str] = {"prompt": first.caption}
        if i % 2:
            refs = []
            for k in range(4):
                ref = folder / f"ref-{i:03d}-{k}.png"
                Image.fromarray(render(first, layout(first, 5000 + 10 * i + k), 320, 240)).save(ref)
                refs.append(ref.resolve().as_uri())
            metadata["references"] = " ".join(refs)
        made.append(register(path, creator="bench", tenant=tenant, metadata=metadata))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=24)
    args = parser.parse_args()
    settings = QcSettings()
    common = settings.common
    folder = Path.cwd() / ".clipstream" / "bench-qc"
    folder.mkdir(parents=True, exist_ok=True)
    store = SegmentStore(common)
    served = store.served_collection()
    if served is not None and METADATA not in store.columns(served):
        raise SystemExit(
            f"{served} predates free metadata (no prompts or references stored, nothing for QC to check): "
            "reindex it (`clipstream reindex`) or run on a fresh stack"
        )
    batch = uploads(folder, args.videos, tenant=f"bench-qc-{int(time.time())}")
    tap = Consumer(consumer_config(common, f"bench-qc-{uuid.uuid4().hex[:8]}"))
    partitions = tap.list_topics(Topics.QC, timeout=30).topics[Topics.QC].partitions
    tap.assign(
        [TopicPartition(Topics.QC, p, tap.get_watermark_offsets(TopicPartition(Topics.QC, p))[1]) for p in partitions]
    )
    started = time.time()
    outcomes = publish_and_wait(common, batch, 900)
    if len(outcomes.indexed) != len(batch):
        raise SystemExit(f"{len(batch) - len(outcomes.indexed)} uploads not indexed: {outcomes.failed}")
    indexed: dict[str, VideoIndexed] = outcomes.indexed
    ingest_s = max(e.indexed_at.timestamp() for e in indexed.values()) - started
    seconds = args.videos * 2 * SCENE_S

    verdicts: dict[str, VideoQc] = {}
    deadline = time.monotonic() + 600
    while len(verdicts) < len(batch) and time.monotonic() < deadline:
        msg = tap.poll(0.5)
        if msg is not None and msg.error() is None:
            verdict = VideoQc.model_validate_json(msg.value() or b"")
            if verdict.event_id in indexed:
                verdicts[verdict.event_id] = verdict
    tap.close()
    lags = [(v.checked_at - indexed[k].indexed_at).total_seconds() for k, v in verdicts.items()]

    checker = QualityChecker(store, ClipClient(common.triton_grpc_url), settings)
    checker.check(next(iter(indexed.values())))  # connections and the thresholds file, once
    timings = []
    for event in indexed.values():
        t0 = time.perf_counter()
        checker.check(event)
        timings.append(time.perf_counter() - t0)
    qc_rate = len(timings) / sum(timings)
    ingest_rate = args.videos / ingest_s
    flagged = sum(v.verdict == "flagged" for v in verdicts.values())
    print(f"videos: {args.videos} x {2 * SCENE_S:.0f} s ({seconds:.0f} video-seconds), half with 4 references")
    print(f"ingestion (whole pipeline): {ingest_rate:6.2f} videos/s  ({seconds / ingest_s:6.1f} video-s/s)")
    print(f"QC verdicts: {len(verdicts)}/{len(batch)} ({flagged} flagged: the second shot is not the prompt)")
    if lags:
        print(f"QC stage lag behind indexing: p50 {statistics.median(lags):.2f} s  p95 {_quantile(lags, 0.95):.2f} s")
    print(f"one QC replica, alone: {qc_rate:6.2f} videos/s  (p50 {statistics.median(timings) * 1000:.0f} ms a video)")
    print(f"ratio QC capacity / ingestion throughput: {qc_rate / ingest_rate:.1f}x")


if __name__ == "__main__":
    with recorded("qc"):
        main()
