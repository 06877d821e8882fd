"""The whole pipeline against a monolith doing the same work, in one run: video-seconds per wall-second.

Run: `clipstream stack up`, then `.venv/bin/python -m bench.pipeline [--repeat 1]` from the folder the stack
was started in (the shared clips, or generated ones, must be under CLIPSTREAM_DECODER_ALLOWED_ROOTS).

(a) **pipeline**: every clip published to `videos.uploaded` at once; the clock runs from the first publish to
    the last `videos.indexed` (decoder → Kafka → embedder → Triton → Kafka → indexer → Milvus, in transactions).
(b) **monolith**: one in-process loop over the same clips: the product's decoder (`decode_video`, the stage's
    settings, in this process: no child), the same model through the same Triton client (all keyframes of a
    video in one call), and the same Milvus write (`SegmentStore.write_segments`, the indexer's), clip after
    clip. No Kafka, no serialisation, no transactions: the floor the pipeline's plumbing is measured against.

Both write real rows (tenants `bench-pipeline-*`, `bench-monolith-*`), deleted at the end. The pipeline
runs twice a round: as deployed, with the whole stack working as it does in production (the enricher's status
projection, near-duplicates, QC and the gateway's status view consume the same uploads on the same cores), and
with only the three ingest stages working (those other consumers paused with SIGSTOP for the run, then
resumed), which is the work the monolith does. The headline, printed first and the one the goal (at least
0.8x on one machine) is judged on, is the deployed ratio: nobody runs the pipeline with its other consumers
stopped. The ingest-only ratio follows as a breakdown: what the plumbing costs, apart from what the other
consumers take.

Keep the output with the README's figures: `.venv/bin/python -m bench.pipeline --repeat 2 | tee
bench/results/pipeline.txt`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import clips, recorded
from services.common.filters import Filters
from services.common.messages import SegmentEmbedding, VideoInfo, VideoUploaded
from services.common.settings import CommonSettings
from services.common.triton import ClipClient
from services.common.vectors import SegmentStore, mean_vector
from services.intake.registration import register
from services.intake.watch import publish_and_wait
from services.media.decode import decode_video
from services.media.images import jpeg_to_pixels, thumbnail
from services.media.settings import MediaSettings

SETTLE_S = 30.0
GOAL = 0.8  # pipeline / monolith, as deployed
OTHER_CONSUMERS = ("enricher", "duplicates", "qc", "notifications", "gateway", "search", "webhooks")


@contextlib.contextmanager
def paused(run_dir: Path, names: tuple[str, ...]) -> Iterator[None]:
    """SIGSTOP the process groups of these stack services (their supervisor and the service), then SIGCONT."""
    groups = [int((run_dir / f"{n}.pid").read_text()) for n in names if (run_dir / f"{n}.pid").is_file()]
    for pid in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGCONT)


def pipeline(common: CommonSettings, uploads: list[VideoUploaded]) -> float:
    started = time.time()
    outcomes = publish_and_wait(common, uploads, 1800)
    if len(outcomes.indexed) != len(uploads):
        raise SystemExit(f"pipeline: {len(uploads) - len(outcomes.indexed)} not indexed: {outcomes.failed}")
    return max(e.indexed_at.timestamp() for e in outcomes.indexed.values()) - started


def monolith(store: SegmentStore, client: ClipClient, media: MediaSettings, uploads: list[VideoUploaded]) -> float:
    options = media.decode_options()
    started = time.perf_counter()
    for up in uploads:
        decoded = decode_video(Path(up.uri.removeprefix("file://")), options)
        images = [jpeg_to_pixels(k.jpeg) for s in decoded.segments for k in s.keyframes]
        vectors, model = client.embed_images(images)
        info = VideoInfo(
            uri=up.uri,
            creator=up.creator,
            tenant=up.tenant,
            title=up.title,
            uploaded_at=up.uploaded_at,
            width=decoded.probe.width,
            height=decoded.probe.height,
            duration_s=decoded.probe.duration_s,
        )
        rows, at = [], 0
        for seg in decoded.segments:
            n = len(seg.keyframes)
            rows.append(
                SegmentEmbedding(
                    event_id=up.event_id,
                    video_id=up.video_id,
                    segment_index=seg.index,
                    segment_count=len(decoded.segments),
                    start_s=seg.start_s,
                    end_s=seg.end_s,
                    keyframe_times=[k.t for k in seg.keyframes],
                    vector=mean_vector(vectors[at : at + n]),
                    model=model,
                    video=info,
                    thumbnail=thumbnail(seg.keyframes[n // 2].jpeg),
                )
            )
            at += n
        store.write_segments(model, rows)
    return time.perf_counter() - started


def report(
    clip_count: int, seconds: float, repeat: int, deployed_s: float, ingest_only_s: float, monolith_s: float
) -> list[str]:
    """The headline first: the pipeline as deployed against the monolith, judged against the goal; then the
    throughputs, and the ingest-only ratio as a breakdown (never the figure the goal is judged on)."""
    deployed, ingest_only = monolith_s / deployed_s, monolith_s / ingest_only_s
    verdict = "met" if deployed >= GOAL else "NOT met"
    return [
        f"pipeline / monolith, as deployed (whole stack working): {deployed:.2f}x (goal >= {GOAL}x: {verdict})",
        f"  {clip_count} clips, {seconds:.1f} video-seconds; best of {repeat}",
        f"  pipeline, as deployed:         {deployed_s:7.1f} s  {seconds / deployed_s:6.2f} video-s/s",
        f"  monolith (one loop):           {monolith_s:7.1f} s  {seconds / monolith_s:6.2f} video-s/s",
        f"breakdown: ingest stages only (other consumers paused): {ingest_only:.2f}x",
        f"  pipeline, ingest stages only:  {ingest_only_s:7.1f} s  {seconds / ingest_only_s:6.2f} video-s/s",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, alternating; the best counts")
    args = parser.parse_args()
    common = CommonSettings()
    store, client, media = SegmentStore(common), ClipClient(common.triton_grpc_url), MediaSettings()
    with tempfile.TemporaryDirectory(dir=Path.cwd() / ".clipstream") as tmp:
        paths = clips(Path(tmp))
        seconds = sum(decode_video(p, media.decode_options()).probe.duration_s for p in paths)  # warms the cache
        stamp = int(time.time())
        tenants = []
        best_pipe = best_ingest = best_mono = float("inf")
        run_dir = (common.home / "run").resolve()  # where `clipstream stack up` keeps its pid files
        for run in range(args.repeat):
            pipe_tenant, mono_tenant = f"bench-pipeline-{stamp}-{run}", f"bench-monolith-{stamp}-{run}"
            ingest_tenant = f"bench-ingest-{stamp}-{run}"
            tenants += [pipe_tenant, mono_tenant, ingest_tenant]
            best_pipe = min(best_pipe, pipeline(common, [register(p, tenant=pipe_tenant) for p in paths]))
            with paused(run_dir, OTHER_CONSUMERS):
                best_ingest = min(best_ingest, pipeline(common, [register(p, tenant=ingest_tenant) for p in paths]))
            time.sleep(SETTLE_S)  # the resumed consumers work through what they missed: not during the monolith
            best_mono = min(best_mono, monolith(store, client, media, [register(p, tenant=mono_tenant) for p in paths]))
        for tenant in tenants:
            store.delete(Filters(tenant=tenant).compile())
    lines = report(
        len(paths), seconds, args.repeat, deployed_s=best_pipe, ingest_only_s=best_ingest, monolith_s=best_mono
    )
    print("\n".join(lines))


if __name__ == "__main__":
    with recorded("pipeline"):
        main()
