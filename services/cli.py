"""`clipstream`: run the local stack, register uploads, search, and run the demo."""

from __future__ import annotations

import json
import os
import shlex
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from services.common.settings import CommonSettings
    from services.search.engine import Hits

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
stack_app = typer.Typer(no_args_is_help=True, help="The local stack: Kafka, Triton, Milvus Lite and the services.")
model_app = typer.Typer(no_args_is_help=True, help="CLIP checkpoints.")
triton_app = typer.Typer(no_args_is_help=True, help="Triton from the nvidia-pytriton wheel, serving triton_models/.")
app.add_typer(stack_app, name="stack")
app.add_typer(model_app, name="model")
app.add_typer(triton_app, name="triton")
console = Console()

SHARED_VIDEOS = Path("../shared/videos")


@stack_app.command("up")
def stack_up(
    services: Annotated[bool, typer.Option(help="also start decoder, embedder, indexer, enricher")] = True,
) -> None:
    from services.stack import manager
    from services.stack.settings import StackSettings

    started = time.perf_counter()
    pids = manager.up(StackSettings(), services=services)
    console.print(f"stack up in {time.perf_counter() - started:.1f}s: {pids}")


@stack_app.command("down")
def stack_down() -> None:
    from services.stack import manager
    from services.stack.settings import StackSettings

    console.print(f"stopped: {manager.down(StackSettings())}")


@stack_app.command("status")
def stack_status() -> None:
    from services.stack import manager
    from services.stack.settings import StackSettings

    for name, pid in manager.status(StackSettings()).items():
        console.print(f"{name:10s} {'running pid ' + str(pid) if pid else 'stopped'}")


@app.command()
def doctor() -> None:
    """Say what is installed, what runs and what is healthy, with the fix for each thing that is not; exit 1
    when something the main job needs is missing or a started stack is broken."""
    from services.stack.doctor import any_fatal, diagnose
    from services.stack.settings import StackSettings

    findings = diagnose(StackSettings())
    table = Table(title="clipstream doctor")
    for col in ("", "what", "state", "fix"):
        table.add_column(col, overflow="fold")  # paths in full: a fix names the log to read
    for f in findings:
        mark = "[green]ok[/green]" if f.ok else "[red]FAIL[/red]" if f.fatal else "[yellow]--[/yellow]"
        name = f"{f.name} [dim](tests only)[/dim]" if f.tests_only else f.name
        table.add_row(f.section, name, f"{mark} {f.detail}", f.fix)
    console.print(table)
    if any_fatal(findings):
        console.print("[red]the main job cannot run until the FAIL lines are fixed[/red]")
        raise typer.Exit(1)
    console.print("[green]nothing the main job needs is missing or broken[/green]")


def _login_link(tenant: str) -> str:
    """A one-time link that signs the local page in as `tenant` (see services/search/login.py)."""
    from services.search.login import LoginBook, login_folder, login_link
    from services.search.settings import SearchSettings

    settings = SearchSettings()
    tenants = set(settings.api_keys.values()) if settings.api_keys else {"default"}
    if tenant not in tenants:
        raise typer.BadParameter(f"the search service has no API key for tenant {tenant!r}: {sorted(tenants)}")
    token = LoginBook(login_folder(settings.common.home)).issue(tenant)
    return login_link("127.0.0.1", settings.port, token)


@app.command()
def login(tenant: Annotated[str, typer.Option(help="whose videos the page shows")] = "default") -> None:
    """Print a link that opens the local stack's page signed in: it works once, within 5 minutes, and the key
    never appears in it (the page trades the link's token for the key and keeps it for its tab only)."""
    from services.stack.process import http_status

    link = _login_link(tenant)
    port = link.split(":")[2].split("/")[0]
    if http_status(f"http://127.0.0.1:{port}/readyz") is None:
        console.print(f"[yellow]the search service does not answer on :{port}: run `clipstream stack up`[/yellow]")
    console.print(f"open the page as tenant {tenant!r} (the link works once, within 5 minutes):")
    console.print(link, soft_wrap=True)  # never folded: a folded link does not paste


@model_app.command("write-random")
def model_write_random(
    out: Path,
    seed: Annotated[int, typer.Option(help="weights are a pure function of this")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="open_clip or hf (Hugging Face CLIPModel)")] = "open_clip",
) -> None:
    """Write a small CLIP with seeded random weights in a real checkpoint layout."""
    from services.clip.random_model import write_random_clip

    if fmt not in ("open_clip", "hf"):
        raise typer.BadParameter("--format must be open_clip or hf")
    console.print(f"wrote {write_random_clip(out, seed=seed, fmt=fmt)}")  # type: ignore[arg-type]


@model_app.command("export-onnx")
def model_export_onnx(
    spec: Annotated[str, typer.Argument(help="open_clip or HF folder, or ARCH@CHECKPOINT")],
    out: Annotated[Path, typer.Argument(help="Triton model repository to write")],
    max_batch: int = 64,
    gpu: Annotated[bool, typer.Option(help="KIND_GPU instances with TensorRT acceleration")] = True,
) -> None:
    """Export both towers to ONNX with a Triton repository (ensembles) for NVIDIA's container."""
    from services.clip.onnx_export import write_repository

    for name, path in write_repository(spec, out, max_batch=max_batch, gpu=gpu).items():
        console.print(f"{name:32s} {path}")


def _pairs(given: list[str] | None) -> dict[str, Any]:
    """`KEY=VALUE` options as free metadata (string values)."""
    out = {}
    for pair in given or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE")
        out[key] = value
    return out


def _ingest(
    paths: list[Path], creator: str, tenant: str, wait: bool, timeout_s: float, metadata: dict[str, Any] | None = None
) -> None:
    from services.common.settings import CommonSettings
    from services.intake.registration import discover, register
    from services.intake.watch import publish_and_wait

    files = discover(paths)
    if not files:
        raise typer.BadParameter("no video files found")
    uploads = [register(f, creator=creator, tenant=tenant, metadata=metadata) for f in files]
    started = time.perf_counter()
    outcomes = publish_and_wait(CommonSettings(), uploads, timeout_s if wait else None)
    console.print(f"published {len(uploads)} uploads")
    if not wait:
        return
    elapsed = time.perf_counter() - started
    segments = sum(i.segment_count for i in outcomes.indexed.values())
    console.print(
        f"indexed {len(outcomes.indexed)}/{len(uploads)} videos ({segments} segments) in {elapsed:.1f}s "
        f"from publish to the last videos.indexed; failed {len(outcomes.failed)}"
    )
    by_event = {u.event_id: u for u in uploads}
    for event_id, letter in outcomes.failed.items():
        console.print(f"  [red]{by_event[event_id].uri}[/red]: {letter.reason}: {letter.detail[:200]}")
    missing = len(uploads) - len(outcomes.indexed) - len(outcomes.failed)
    if missing:
        console.print(f"[yellow]{missing} uploads had no outcome within {timeout_s:.0f}s[/yellow]")
        raise typer.Exit(1)


@model_app.command("train-toy")
def model_train_toy(
    out: Path,
    steps: Annotated[int, typer.Option(help="optimiser steps (batch of 192 distinct scenes each)")] = 1000,
    seed: Annotated[int, typer.Option(help="the run is a pure function of this")] = 0,
) -> None:
    """Train the small CLIP on the toy world (~9 min on 2 cores) and save it as an open_clip folder."""
    from services.clip.toy.train import TrainConfig, train

    report = train(out, TrainConfig(steps=steps, seed=seed), progress=console.print)
    console.print(f"wrote {out} in {report.seconds:.0f}s; held-out captions: {report.heldout}")


@model_app.command("measure-prompts")
def model_measure_prompts(
    model: Annotated[Path | None, typer.Argument(help="a toy-world model folder (default: the shipped one)")] = None,
    write: Annotated[bool, typer.Option(help="write the result into the folder's model card")] = False,
) -> None:
    """Measure the generation cache's `prompt_match` on every toy-world caption: the nearest two captions of
    different scenes, and the threshold a margin above them."""
    from services.clip.loader import load_clip
    from services.clip.toy.prompts import measure, write_card
    from services.common.settings import CommonSettings

    folder = model or CommonSettings().default_model_dir
    result = measure(load_clip(str(folder), device="cpu").embed_texts)
    console.print_json(data=result.report())
    if write:
        write_card(folder, result)
        console.print(f"prompt_match {result.threshold} written to {folder}")


@triton_app.command("prepare")
def triton_prepare() -> None:
    """Download and unpack tritonserver into the cache (a container build step)."""
    from services.stack.settings import StackSettings
    from services.stack.triton import triton_home

    console.print(f"tritonserver in {triton_home(StackSettings())}")


@triton_app.command("serve")
def triton_serve() -> None:
    """Run tritonserver in the foreground on the configured host and ports (a container's entry point)."""
    from services.stack.manager import ensure_model
    from services.stack.settings import StackSettings
    from services.stack.triton import exec_triton

    settings = StackSettings()
    exec_triton(settings, ensure_model(settings))


@app.command()
def topics() -> None:
    """Create any missing topic with the configured partitions and replication (a deploy-time job)."""
    from services.common.kafka.admin import ensure_topics
    from services.common.settings import CommonSettings

    created = ensure_topics(CommonSettings())
    console.print(f"created {', '.join(created)}" if created else "every topic exists")


@app.command()
def schemas(folder: Path = Path("schemas")) -> None:
    """Write the JSON Schema of every topic's message model (commit the result)."""
    from services.common.contracts import write_schemas

    for path in write_schemas(folder):
        console.print(f"wrote {path}")


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="video files or folders")],
    creator: str = "",
    tenant: str = "default",
    wait: Annotated[bool, typer.Option(help="wait for videos.indexed (or a dead letter) per upload")] = True,
    timeout: float = 600.0,
    meta: Annotated[list[str] | None, typer.Option(help="free metadata KEY=VALUE (repeatable)")] = None,
) -> None:
    """Register videos: publish one `videos.uploaded` event each."""
    _ingest(paths, creator, tenant, wait, timeout, _pairs(meta))


@app.command()
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the video file")],
    gateway: Annotated[str, typer.Option(help="the gateway's URL", envvar="CLIPSTREAM_GATEWAY_URL")] = (
        "http://127.0.0.1:8090"
    ),
    key: Annotated[str, typer.Option(help="API key (default: the local stack's)", envvar="CLIPSTREAM_API_KEY")] = "",
    title: str = "",
    creator: str = "",
    tag: Annotated[list[str] | None, typer.Option(help="a tag (repeatable)")] = None,
    meta: Annotated[list[str] | None, typer.Option(help="free metadata KEY=VALUE (repeatable)")] = None,
    parallel: Annotated[int, typer.Option(min=1, max=32, help="parts sent at once")] = 4,
    upload_id: Annotated[
        str | None, typer.Option(help="resume this upload (default: this file's unfinished one)")
    ] = None,
    wait: Annotated[bool, typer.Option(help="follow the upload to its outcome (indexed or failed)")] = False,
) -> None:
    """Upload a video through the gateway straight into the object store, in resumable parts, and register it.
    After a cut connection it carries on with the parts the store lacks; run it again to resume a broken run."""
    import mimetypes

    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    from services.common.settings import CommonSettings
    from services.gateway.multipart_client import MultipartClient, ResumeBook, UploadError

    settings = CommonSettings()
    key = key or settings.local_api_key()
    book = ResumeBook(settings.home / "upload-resume")
    guessed = mimetypes.guess_type(file.name)[0] or ""
    content_type = guessed if guessed.startswith("video/") else "application/octet-stream"
    fields = {"title": title, "creator": creator, "tags": tag or [], "metadata": _pairs(meta)}
    columns = (*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console) as bar, MultipartClient(gateway, key, parallel=parallel) as client:
        task = bar.add_task(file.name, total=file.stat().st_size)
        client.on_progress(lambda n: bar.advance(task, n), bar.console.print)

        def started(upload_id: str, state: dict[str, Any]) -> None:
            book.put(gateway, key, file, upload_id)
            bar.update(task, completed=sum(p["size"] for p in state.get("uploaded", [])))
            bar.console.print(f"upload {upload_id}: {state['part_count']} parts of {state['part_size']} bytes")

        try:
            resume = upload_id or book.get(gateway, key, file)
            if resume and not upload_id and not client.exists(resume):
                resume = None  # the noted upload is gone (aborted or expired): start over
            sent = client.upload(file, resume, content_type, on_start=started, **fields)
            book.forget(gateway, key, file)
            registered = sent.registered
            console.print(f"sent {sent.bytes_sent} bytes; registered {registered['video_id']} as {registered['uri']}")
            console.print(f"status: {gateway.rstrip('/')}{registered['status_url']}")
            outcome = client.follow(registered["event_id"]) if wait else None
        except UploadError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
    if outcome is not None:
        console.print(f"{outcome.get('stage', 'no outcome')} {outcome.get('reason', '')} {outcome.get('detail', '')}")
        if outcome.get("stage") != "indexed":
            raise typer.Exit(1)


def _reason(why: dict[str, Any]) -> str:
    """One reason a result matched, as the CLI shows it: the score it was seen with, or the words and where."""
    if why.get("mode") != "text":
        return f"seen {why.get('score', 0):.3f}"
    lines = why.get("lines") or []
    return "written " + ", ".join(
        f"{line['text']!r} at {line['t']:.1f}s box ({line['box'][0]:.2f},{line['box'][1]:.2f})-"
        f"({line['box'][2]:.2f},{line['box'][3]:.2f})"
        for line in lines[:3]
    )


def _print_hits(title: str, hits: Hits) -> None:
    if hits.good_match is not None:
        verdict = "a good match" if hits.good_match else "[yellow]no good match[/yellow]"
        title = f"{title}: {verdict} (threshold {hits.match_threshold:.3f})"
    table = Table(title=title)
    for col in ("#", "score", "video", "best segment", "why", "creator", "uri"):
        table.add_column(col)
    for rank, hit in enumerate(hits, 1):
        f = hit.fields
        table.add_row(
            str(rank),
            f"{hit.score:.4f}",
            str(f.get("title") or hit.video_id),
            f"{hit.start_s:.1f}-{hit.end_s:.1f}s (keyframe {float(f['keyframe_s']):.1f}s)",
            "; ".join(_reason(w) for w in f.get("why") or []),
            str(f.get("creator", "")),
            str(f.get("uri", ""))[-60:],
        )
    console.print(table)


@app.command()
def search(
    text: Annotated[str | None, typer.Argument(help="text query")] = None,
    image: Annotated[Path | None, typer.Option(help="image file query")] = None,
    video: Annotated[Path | None, typer.Option(help="video file (or excerpt) query")] = None,
    limit: int = 10,
    tenant: str | None = None,
    creator: str | None = None,
    meta: Annotated[list[str] | None, typer.Option(help="only videos whose metadata KEY equals VALUE")] = None,
) -> None:
    """Search by text, image or video: best segment per video, with scores and timestamps."""
    from services.common.filters import Filters
    from services.search.engine import SearchEngine
    from services.search.settings import SearchSettings

    if sum(x is not None for x in (text, image, video)) != 1:
        raise typer.BadParameter("give exactly one of TEXT, --image, --video")
    filters = Filters(tenant=tenant, creator=creator, metadata=_pairs(meta) or None)
    with SearchEngine(SearchSettings()) as engine:
        if text is not None:
            hits, title = engine.by_text(text, limit, filters), f"text: {text!r}"
        elif image is not None:
            hits, title = engine.by_image(image.read_bytes(), limit, filters), f"image: {image}"
        else:
            assert video is not None
            hits, title = engine.by_video(video, limit, filters), f"video: {video}"
    _print_hits(title, hits)


@app.command()
def reindex(
    model: Annotated[str, typer.Option(help="the new CLIP: open_clip or HF folder, or ARCH@CHECKPOINT")],
    force: Annotated[bool, typer.Option(help="switch the aliases even if some videos failed")] = False,
    rate: Annotated[float, typer.Option(help="videos published a second at most (0: unlimited)")] = 0.0,
    in_flight: Annotated[int, typer.Option(help="videos published and not yet indexed, at most")] = 64,
    http_port: Annotated[
        int | None, typer.Option(help="serve progress, pause/resume and flow control on 127.0.0.1:PORT")
    ] = None,
    settle_s: Annotated[float, typer.Option(help="after the switch, how long the stages get to notice it")] = 15.0,
) -> None:
    """Re-embed the catalogue with another model through the pipeline (backfill topics, the stages' own
    replicas) into new collections, then switch the aliases. Interrupted, it resumes when run again."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from services.clip.loader import load_clip
    from services.common.settings import CommonSettings
    from services.common.vectors import SegmentStore
    from services.indexer.reindex import Control, Interrupted, Reindex, stage_groups
    from services.indexer.reindex_api import ReindexServer

    settings = CommonSettings()
    target = load_clip(model, device="cpu").ref
    run = Reindex(
        SegmentStore(settings), settings, target, model, Control(rate, in_flight), settle_s, force, drain=stage_groups()
    )
    server = ReindexServer(run, port=http_port).start() if http_port is not None else None
    if server is not None:
        console.print(f"progress: http://127.0.0.1:{server.port}/v1/reindex")
    stop = threading.Event()
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(_capture(lambda: run.run(stop))), daemon=True)
    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"))
    try:
        with Progress(*columns, TimeRemainingColumn(), console=console) as bar:
            task = bar.add_task("reindex", total=None, rate="")
            worker.start()
            while worker.is_alive():
                now = run.progress()
                bar.update(
                    task,
                    description=f"reindex ({now.state})",
                    total=now.total or None,
                    completed=now.done,
                    rate=f"{now.rate_per_s:.2f} videos/s, {now.in_flight} in flight, {now.failed} failed",
                )
                worker.join(0.5)
    except KeyboardInterrupt:
        stop.set()
        worker.join(60)
    finally:
        if server is not None:
            server.stop()
    outcome = result[0] if result else Interrupted("stopped")
    if isinstance(outcome, Interrupted):
        console.print("[yellow]stopped: run the same command again to resume[/yellow]")
        raise typer.Exit(130)
    if isinstance(outcome, BaseException):
        raise outcome
    report = outcome
    console.print(
        f"{report.videos} videos in {report.collection} ({report.published} published"
        f"{', resumed' if report.resumed else ''}) in {time.perf_counter() - started:.1f}s; "
        f"aliases {'switched' if report.switched else 'NOT switched'}"
    )
    for video_id, reason in report.failed.items():
        console.print(f"  [red]{video_id}[/red]: {reason}")
    if not report.switched:
        raise typer.Exit(1)


def _capture(fn: Callable[[], Any]) -> Any:
    """fn's result, or the exception it raised (a worker thread's outcome, for the main thread to act on)."""
    try:
        return fn()
    except BaseException as exc:
        return exc


@app.command()
def calibrate(
    tenant: Annotated[str | None, typer.Option(help="calibrate on one tenant's videos")] = None,
    keyframes: Annotated[int, typer.Option(help="keyframes sampled from the catalogue")] = 300,
    write: Annotated[bool, typer.Option(help="write the thresholds to the settings' thresholds file")] = True,
) -> None:
    """Estimate the served model's near-duplicate and "no good match" thresholds from the catalogue."""
    from services.clip.thresholds import ThresholdBook
    from services.common.settings import CommonSettings
    from services.common.triton import ClipClient
    from services.common.vectors import SegmentStore
    from services.search.calibrate import Calibrator

    settings = CommonSettings()
    book = ThresholdBook(settings.thresholds_path)
    calibrator = Calibrator(
        SegmentStore(settings), ClipClient(settings.triton_grpc_url), book, settings.resolved_clip_model()
    )
    result = calibrator.run(tenant=tenant, max_keyframes=keyframes, write=write, progress=console.print)
    table = Table(title=f"{result.target.model.name}:{result.target.model.version} on {result.videos} videos")
    for col in ("threshold", "value", "precision", "recall", "positives", "negatives"):
        table.add_column(col)
    for name, choice in result.choices.items():
        c = choice.as_dict()
        table.add_row(
            name,
            f"{c['threshold']:.4f}",
            f"{c['precision']:.3f}",
            f"{c['recall']:.3f}",
            str(c["positives"]),
            str(c["negatives"]),
        )
    console.print(table)
    for name, why in result.skipped.items():
        console.print(f"[yellow]{name} not estimated: {why}[/yellow]")
    for line in result.summary():
        console.print(line)
    console.print(f"written to {book.path}" if write else "not written (--no-write)")


@app.command()
def curate(
    manifest: Annotated[
        Path, typer.Argument(help="the manifest to write: a .parquet file, or a folder (kept/ and dropped/ parts)")
    ],
    tenant: Annotated[str, typer.Option(help="whose segments")] = "default",
    eps: Annotated[float, typer.Option(help="drop a segment whose cosine to a kept one exceeds 1 - eps")] = 0.05,
    clusters: Annotated[int, typer.Option(help="k-means clusters (0: about sqrt(n / 2))")] = 0,
    collection: Annotated[str | None, typer.Option(help="segments collection (default: the served one)")] = None,
    restart: Annotated[bool, typer.Option(help="discard an interrupted run's work instead of resuming it")] = False,
    ray: Annotated[bool, typer.Option(help="run the assignment and SemDeDup as Ray tasks (a local Ray)")] = False,
    ray_address: Annotated[
        str | None, typer.Option(help="a Ray cluster to run on instead (ray://head:10001, or auto in a Ray job)")
    ] = None,
) -> None:
    """Cluster a tenant's segment vectors, drop near-identical segments within clusters (SemDeDup) and write
    a training manifest. An interrupted run resumes from its last checkpoint when started again."""
    from rich.progress import Progress

    from services.common.errors import ClipstreamError
    from services.common.settings import CommonSettings
    from services.common.vectors import SegmentStore
    from services.curation.executor import executor
    from services.curation.job import CurationConfig, CurationJob

    settings = CommonSettings()
    store = SegmentStore(settings)
    target = collection or store.served_collection()
    if target is None:
        raise typer.BadParameter("nothing is indexed yet: there is no collection to curate")
    config = CurationConfig(tenant=tenant, collection=target, eps=eps, clusters=clusters)
    with Progress(console=console) as bar:
        tasks: dict[str, Any] = {}

        def progress(step: str, done: float) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=1.0)
            bar.update(tasks[step], completed=done)

        tasks_on = executor(ray, ray_address)
        try:
            job = CurationJob(store, config, settings.home / "curation" / "work", progress, tasks_on)
            report = job.run(manifest, restart)
        except ClipstreamError as exc:
            console.print(f"[red]{exc.reason}[/red]: {exc.detail}")
            raise typer.Exit(2) from exc
        finally:
            tasks_on.close()
    if report.resumed_from:
        console.print(f"resumed after step {report.resumed_from!r}")
    console.print(
        f"{report.rows} segments in {report.clusters} clusters: {report.kept} kept, {report.dropped} dropped as "
        f"near-duplicates; manifest {report.manifest} ({', '.join(f'{k} {v:.1f}s' for k, v in report.seconds.items())})"
    )


def _serve_model(common: CommonSettings, spec: str) -> None:
    """A state folder embedded with another model (an earlier demo's) would refuse this model's
    vectors: serve this model's collections instead; the old ones stay (`clipstream reindex` moves a
    catalogue between models)."""
    from services.clip.loader import load_clip
    from services.common.vectors import SegmentStore

    store = SegmentStore(common)
    served = store.served_collection()
    ref = load_clip(spec, device="cpu").ref
    if served is None or store.model_of(served)[0].version == ref.version:
        return
    console.print(
        f"[yellow]{common.home} holds a catalogue embedded with {store.model_of(served)[0].name}: "
        f"serving {ref.name}'s collections instead (the old ones are kept)[/yellow]"
    )
    store.ensure_collections(ref, spec=spec, serve=False)
    store.switch_aliases(ref)
    time.sleep(6)  # the embedder caches the served model for 5 s


@app.command()
def demo(
    folder: Annotated[Path | None, typer.Argument(help="videos to ingest; default ../shared/videos")] = None,
) -> None:
    """Bring up the stack, ingest a folder of videos and a few clips of the toy world, and search them."""
    from services.clip.card import ModelCard
    from services.media.synthetic import write_demo_clips, write_demo_world
    from services.search.engine import SearchEngine
    from services.search.settings import SearchSettings
    from services.stack import manager
    from services.stack.settings import StackSettings

    begun = time.perf_counter()
    settings = StackSettings()
    if folder is None:
        if SHARED_VIDEOS.is_dir():
            folder = SHARED_VIDEOS
        else:
            folder = settings.common.home / "demo-videos"
            write_demo_clips(folder)
            console.print(f"no ../shared/videos here: generated clips in {folder}")
    folder = folder.resolve()
    world_folder = (settings.common.home / "demo-toy-world").resolve()
    world = write_demo_world(world_folder)
    os.environ.setdefault("CLIPSTREAM_DECODER_ALLOWED_ROOTS", json.dumps([str(folder), str(world_folder)]))
    model = manager.ensure_model(settings)
    card = ModelCard.read(model)
    if card.toy_world:
        console.print(
            f"[bold yellow]Serving {card.name}, the small CLIP trained here on a generated toy world "
            f"(`clipstream model train-toy`). It knows {card.knows}, as whole captions ('two small red circles "
            "on grass'), and nothing of the real world: text queries work on the toy-world clips, and on "
            "real videos only near-duplicate (image/video) queries mean something. For real CLIP, set "
            "CLIPSTREAM_CLIP_MODEL to an open_clip or Hugging Face CLIP folder (or ARCH@CHECKPOINT) and run "
            "the demo again.[/bold yellow]"
        )
    elif card.random_weights:
        console.print(
            f"[bold yellow]Serving {card.name}, a CLIP with RANDOM weights: text results are meaningless. "
            "Set CLIPSTREAM_CLIP_MODEL to a real open_clip or Hugging Face CLIP folder.[/bold yellow]"
        )
    else:
        console.print(f"serving CLIP {card.name} from {model}")
    started = time.perf_counter()
    manager.up(settings)
    console.print(f"stack up in {time.perf_counter() - started:.1f}s")
    _serve_model(settings.common, model)
    _ingest([folder, *world], creator="demo", tenant="default", wait=True, timeout_s=900)
    for path, captions in world.items():
        console.print(f"{path.name}: " + " | ".join(f"{3 * i}-{3 * i + 3}s {c}" for i, c in enumerate(captions)))
    # what the toy model knows is whole captions; a query for something in no video reports "no good match"
    shown = list(world.values())
    queries = [shown[0][0], shown[1][1], shown[2][0], "three large green triangles on water", "aerial sunset"]
    with SearchEngine(SearchSettings()) as engine:
        for query in queries:
            _print_hits(f"text: {query!r}", engine.by_text(query, limit=3))
        videos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix != ".md")
        if videos:
            _print_hits(f"video: {videos[0].name}", engine.by_video(videos[0], limit=5))
    port = os.environ.get("CLIPSTREAM_SEARCH_PORT", "8080")
    console.print(
        f"\n[bold]Done in {time.perf_counter() - begun:.0f}s[/bold]: the stack runs, {folder} and the toy-world "
        "clips are indexed for tenant 'default', and the searches above ran on them. Next:"
    )
    try:
        link = _login_link("default")
        console.print("- the page, signed in (the link works once, within 5 minutes; `clipstream login` for another):")
        console.print(f"  {link}", soft_wrap=True)  # never folded: a folded link does not paste
    except typer.BadParameter as exc:
        console.print(f"- the page: http://127.0.0.1:{port}/ ({exc.message})")
    console.print(
        f"- the API and its docs: http://127.0.0.1:{port}/docs\n"
        f"- search from the shell: clipstream search {shlex.quote(queries[0])}\n"
        f"- what runs and whether it is healthy: clipstream doctor (logs in {settings.run_dir})\n"
        "- stop the stack: clipstream stack down"
    )


if __name__ == "__main__":
    app()
