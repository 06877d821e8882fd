"""Scale-out of one stage on this machine: the same burst of uploads with one replica of the stage, then with
two (a second consumer in its group, sharing the topic's partitions), in the same run.

Run: `clipstream stack up`, then `.venv/bin/python -m bench.scaleout [--stage embedder] [--rounds 2]` from
the folder the stack was started in (the clips must be under CLIPSTREAM_DECODER_ALLOWED_ROOTS). Each round
publishes every clip at once (a new tenant each time, so every upload is a new video) and times the first
publish to the last `videos.indexed`; rounds alternate one and two replicas, the best of each counts. Prints
videos/s and video-seconds/s for both and the ratio. On 2 cores the stages already share the CPU, so the
ratio shows what a second replica buys when it has no core of its own; a cluster gives each replica one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import clips, recorded
from bench.freshness import burst
from services.common.filters import Filters
from services.common.settings import CommonSettings
from services.common.vectors import SegmentStore
from services.intake.registration import register
from services.media.decode import decode_video
from services.media.settings import MediaSettings
from services.stack.process import http_ok

SECOND_PORT = 9191


def second_replica(stage: str, port: int = SECOND_PORT) -> subprocess.Popen[bytes]:
    env = {**os.environ, f"CLIPSTREAM_{stage.upper()}_HEALTH_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", f"services.{stage}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while not http_ok(f"http://127.0.0.1:{port}/readyz"):
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the second replica did not become ready")
        time.sleep(0.5)
    time.sleep(8)  # the group rebalances: partitions move to the new member
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", default="embedder", choices=["decoder", "embedder", "indexer"])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    common = CommonSettings()
    stamp = int(time.time())
    best: dict[int, float] = {1: 0.0, 2: 0.0}
    tenants = []
    with tempfile.TemporaryDirectory(dir=Path.cwd() / ".clipstream") as tmp:
        paths = clips(Path(tmp))
        seconds = sum(decode_video(p, MediaSettings().decode_options()).probe.duration_s for p in paths)
        for round_ in range(args.rounds):
            for replicas in (1, 2):
                tenant = f"bench-scale-{stamp}-{round_}-{replicas}"
                tenants.append(tenant)
                extra = second_replica(args.stage) if replicas == 2 else None
                try:
                    rate = burst(common, [register(p, tenant=tenant) for p in paths])
                finally:
                    if extra is not None:
                        extra.terminate()
                        extra.wait(30)
                        time.sleep(8)  # its partitions return to the first replica
                best[replicas] = max(best[replicas], rate)
    store = SegmentStore(common)
    for tenant in tenants:
        store.delete(Filters(tenant=tenant).compile())
    per_video = seconds / len(paths)
    print(f"\n{len(paths)} clips, {seconds:.0f} video-seconds; best of {args.rounds} rounds; stage: {args.stage}")
    for replicas, rate in best.items():
        print(f"{replicas} replica(s): {rate:5.2f} videos/s  {rate * per_video:6.1f} video-s/s")
    print(f"ratio 2 / 1 replicas: {best[2] / best[1]:.2f}x")


if __name__ == "__main__":
    with recorded("scaleout"):
        main()
