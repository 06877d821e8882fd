"""Latency from registration to `videos.indexed`: through the gateway's HTTP API against publishing the
same event straight to Kafka (the `clipstream ingest` path) as the baseline, on a running local stack.

Run: `clipstream stack up` (with the clips' folder in CLIPSTREAM_DECODER_ALLOWED_ROOTS), then
`.venv/bin/python -m bench.gateway [--gateway http://127.0.0.1:8090]`. Clips are registered one at a time
(latency, not throughput); a clip's latency is its `indexed_at` minus the moment its request was sent.
Prints p50/p95 for both paths and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.common import clips, recorded
from services.common.kafka.publisher import Publisher
from services.common.messages import Topics
from services.common.settings import CommonSettings
from services.intake.registration import register
from services.intake.watch import UploadWatch


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def direct(settings: CommonSettings, paths: list[Path]) -> list[float]:
    """One long-lived producer, as the gateway has; the clock starts when the event is handed to it."""
    publisher = Publisher(settings, "bench")
    latencies = []
    for path in paths:
        upload = register(path, tenant="bench-direct")
        watch = UploadWatch(settings)
        try:
            sent = datetime.now(UTC)
            publisher.publish(Topics.UPLOADED, upload)
            publisher.flush()
            outcome = watch.wait([upload.event_id], 300)
        finally:
            watch.close()
        latencies.append((outcome.indexed[upload.event_id].indexed_at - sent).total_seconds())
    return latencies


def through_gateway(settings: CommonSettings, paths: list[Path], url: str, key: str) -> list[float]:
    latencies = []
    headers = {"Authorization": f"Bearer {key}"}
    for path in paths:
        watch = UploadWatch(settings)
        try:
            sent = datetime.now(UTC)
            response = httpx.post(
                f"{url}/v1/videos", json={"uri": path.resolve().as_uri()}, headers=headers, timeout=60
            )
            response.raise_for_status()
            event_id = response.json()["event_id"]
            outcome = watch.wait([event_id], 300)
        finally:
            watch.close()
        latencies.append((outcome.indexed[event_id].indexed_at - sent).total_seconds())
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gateway", default="http://127.0.0.1:8090")
    args = parser.parse_args()
    settings = CommonSettings()
    with tempfile.TemporaryDirectory() as tmp:
        paths = clips(Path(tmp))
        started = time.perf_counter()
        baseline = direct(settings, paths)
        gateway = through_gateway(settings, paths, args.gateway, settings.local_api_key())
        print(f"{len(paths)} clips, one at a time, in {time.perf_counter() - started:.0f}s")
    print(f"{'path':28s} {'p50 s':>8s} {'p95 s':>8s} {'mean s':>8s}")
    for label, values in (("direct publish (baseline)", baseline), ("gateway POST /v1/videos", gateway)):
        p50, p95 = _quantile(values, 0.5), _quantile(values, 0.95)
        print(f"{label:28s} {p50:8.2f} {p95:8.2f} {statistics.mean(values):8.2f}")
    print(
        f"ratio gateway/direct: p50 {_quantile(gateway, 0.5) / _quantile(baseline, 0.5):.2f}x, "
        f"p95 {_quantile(gateway, 0.95) / _quantile(baseline, 0.95):.2f}x"
    )


if __name__ == "__main__":
    with recorded("gateway"):
        main()
