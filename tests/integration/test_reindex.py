"""`clipstream reindex` through the pipeline: the catalogue moves to another model's collections while searches
keep answering, and a reindex killed mid-way (with a replica of the backfill consumers) still switches with
every video in the new collections exactly once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from services.clip.loader import load_clip
from services.clip.random_model import write_random_clip
from services.common.filters import Filters
from services.common.kafka.publisher import Publisher
from services.common.messages import ModelRef, SegmentEmbedding, Topics, VideoUploaded, is_backfill
from services.common.settings import CommonSettings
from services.common.vectors import (
    SEGMENTS_ALIAS,
    VIDEOS_ALIAS,
    SegmentStore,
    segments_collection,
    videos_collection,
)
from services.indexer.reindex import Control, Interrupted, Reindex, stage_groups
from services.indexer.reindex_api import ReindexServer
from services.intake.registration import register
from services.intake.watch import Outcomes, publish_and_wait
from services.media.decode import DecodeOptions, decode_video
from services.media.synthetic import write_clip
from services.search.engine import SearchEngine
from services.search.settings import SearchSettings
from services.stack.process import Proc, http_ok
from tests.integration.conftest import port
from tests.ledger import TopicTap

SETTLE_S = 6.0  # the embedder caches the served model for 5 s
DECODER_PORT_VAR = "CLIPSTREAM_DECODER_HEALTH_PORT"


def _catalogue(common: CommonSettings, media_root: Path, name: str, count: int, seed: int) -> list[VideoUploaded]:
    uploads = [
        register(write_clip(media_root / name / f"{i}.mp4", seconds=4.0, size=(160, 96), seed=seed + i), tenant=name)
        for i in range(count)
    ]
    outcome = publish_and_wait(common, uploads, 300)
    assert {u.event_id for u in uploads} <= set(outcome.indexed)
    return uploads


def _every_video_once(store: SegmentStore, old: str, model: ModelRef) -> None:
    """Each video of the old collections is in the new ones once, with each of its segments once (the new ones
    may hold more: uploads indexed after the switch)."""
    old_videos = {r["video_id"]: r for rows in store.iter_rows(old, ["video_id", "segment_count"]) for r in rows}
    new_ids = [r["video_id"] for rows in store.iter_rows(videos_collection(model), ["video_id"]) for r in rows]
    assert len(new_ids) == len(set(new_ids)) and set(old_videos) <= set(new_ids)
    segments: dict[str, list[int]] = {}
    for rows in store.iter_rows(segments_collection(model), ["video_id", "segment_index"]):
        for r in rows:
            segments.setdefault(r["video_id"], []).append(r["segment_index"])
    for video_id, row in old_videos.items():
        assert sorted(segments[video_id]) == list(range(row["segment_count"])), video_id


def test_reindex_switches_aliases_while_searches_answer(
    common: CommonSettings, media_root: Path, tmp_path: Path
) -> None:
    clip = write_clip(media_root / "reindex" / "target.mp4", seconds=8.0, size=(320, 180), seed=77, cuts=(4.0,))
    target = register(clip, tenant="reindex")
    assert target.event_id in publish_and_wait(common, [target], 300).indexed
    query = decode_video(clip, DecodeOptions()).segments[1].keyframes[0].jpeg
    store = SegmentStore(common)
    old_model, _ = store.model_of(store.served() or "")
    old = store.served(VIDEOS_ALIAS) or ""
    videos_before = store.count(collection=VIDEOS_ALIAS)
    new_spec = write_random_clip(tmp_path / "next", seed=1, name="clip-tiny-next")
    new_model = load_clip(str(new_spec)).ref

    answers: list[tuple[bool, str]] = []
    errors: list[BaseException] = []
    switched = threading.Event()
    stop = threading.Event()

    def search_forever() -> None:
        engine = SearchEngine(SearchSettings())
        while not stop.is_set():
            after = switched.is_set()
            try:
                hits = engine.by_image(query, limit=1)
                answers.append((after, hits[0].video_id if hits else ""))
            except Exception as exc:
                errors.append(exc)

    run = Reindex(
        store, common, new_model, str(new_spec), Control(in_flight=4), settle_s=SETTLE_S, drain=stage_groups()
    )
    server = ReindexServer(run).start()
    api = f"http://127.0.0.1:{server.port}/v1/reindex"
    late = register(write_clip(media_root / "reindex" / "late.mp4", seconds=4.0, seed=78), tenant="reindex")
    late_outcome: list[Outcomes] = []
    publisher = threading.Thread(target=lambda: late_outcome.append(publish_and_wait(common, [late], 300)), daemon=True)
    searcher = threading.Thread(target=search_forever, daemon=True)
    reports: list[object] = []
    halt = threading.Event()  # the first run is stopped right after the switch: a second one must finish it

    def coordinate() -> None:
        try:
            reports.append(run.run(halt))
        except Interrupted as exc:
            reports.append(exc)

    def halt_at_switch() -> None:
        while not run.report.switched and coordinator.is_alive():
            time.sleep(0.02)
        switched.set()
        halt.set()

    coordinator = threading.Thread(target=coordinate, daemon=True)
    searcher.start()
    try:
        assert httpx.post(f"{api}/pause").json()["state"] in ("starting", "paused")
        coordinator.start()
        deadline = time.monotonic() + 60
        while (paused := httpx.get(api).json())["state"] == "starting" and time.monotonic() < deadline:
            time.sleep(0.2)  # the new collections are made, the catalogue read
        time.sleep(2)  # paused: still nothing published
        paused = httpx.get(api).json()
        assert paused["state"] == "paused" and paused["published"] == 0 and paused["total"] >= videos_before
        publisher.start()  # an upload that arrives while reindex runs must not be left in the old collections
        threading.Thread(target=halt_at_switch, daemon=True).start()
        assert httpx.post(f"{api}/resume").json()["state"] == "running"
        coordinator.join(300)
        assert reports and isinstance(reports[0], Interrupted), reports
        assert httpx.get(api).json()["state"] == "stopped" and store.served() == segments_collection(new_model)
        again = Reindex(
            store, common, new_model, str(new_spec), Control(in_flight=4), settle_s=SETTLE_S, drain=stage_groups()
        )
        report = again.run()  # resumes after the switch: settles, catches up, finishes
        assert report.resumed and report.switched and report.failed == {}
        done = again.progress()
        assert done.state == "done" and done.done == done.total >= videos_before
        publisher.join(300)
        assert late_outcome and late.event_id in late_outcome[0].indexed
        time.sleep(SETTLE_S)
        assert store.video(late.video_id) is not None, "the upload indexed during reindex is not served"
        while sum(after for after, _ in answers) < 3 and searcher.is_alive() and not errors:
            stop.wait(0.2)
        stop.set()
        searcher.join(60)
        assert run.report.failed == {}
        assert store.served() == segments_collection(new_model)
        assert store.count(collection=VIDEOS_ALIAS) == videos_before + 1
        _every_video_once(store, old, new_model)
        assert errors == []
        before = [vid for after, vid in answers if not after]
        after = [vid for after, vid in answers if after]
        assert before and len(after) >= 3
        assert set(before) == set(after) == {target.video_id}
    finally:
        stop.set()
        server.stop()
        store.switch_aliases(old_model)  # later test modules search the pipeline's own model
        time.sleep(SETTLE_S)  # the embedder sees the old model served again before later modules upload


def test_a_reindex_killed_midway_with_a_backfill_replica_still_switches_with_every_video_once(
    common: CommonSettings, stack: object, media_root: Path, tmp_path: Path
) -> None:
    _catalogue(common, media_root, "reindex-chaos", 8, seed=300)
    store = SegmentStore(common)
    old_model, _ = store.model_of(store.served() or "")
    old = store.served(VIDEOS_ALIAS) or ""
    new_spec = write_random_clip(tmp_path / "chaos", seed=2, name="clip-tiny-chaos")
    new_model = load_clip(str(new_spec)).ref
    run_dir = stack.run_dir  # type: ignore[attr-defined]
    replica = Proc("decoder-2", run_dir)  # a second decoder: it shares the backfill's partitions
    replica_port = port(9213)
    replica.start([sys.executable, "-m", "services.decoder"], env={DECODER_PORT_VAR: str(replica_port)})
    http = port(28790)
    command = [sys.executable, "-m", "services.cli", "reindex", "--model", str(new_spec), "--settle-s", str(SETTLE_S)]
    first = subprocess.Popen(
        [*command, "--rate", "1", "--in-flight", "2", "--http-port", str(http)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not http_ok(f"http://127.0.0.1:{replica_port}/readyz") and time.monotonic() < deadline:
            time.sleep(0.2)
        progress: dict[str, object] = {}
        while time.monotonic() < deadline:
            try:
                progress = httpx.get(f"http://127.0.0.1:{http}/v1/reindex", timeout=2).json()
            except httpx.HTTPError:
                progress = {}
            if int(progress.get("done", 0)) >= 2:  # type: ignore[call-overload]
                break
            time.sleep(0.2)
        assert 2 <= int(progress["done"]) < int(progress["total"]), progress  # type: ignore[call-overload]
        first.send_signal(signal.SIGKILL)  # the coordinator, mid-way, events in flight
        pid = replica.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # and one replica of the backfill's decoders, whatever it was doing
        first.wait(30)
        assert store.served() == segments_collection(old_model)
        said_to = tmp_path / "again.out"
        with said_to.open("w") as out:
            again = subprocess.Popen([*command, "--http-port", str(http)], stdout=out, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 300
            while again.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    progress = httpx.get(f"http://127.0.0.1:{http}/v1/reindex", timeout=2).json()
                time.sleep(1)
        if again.poll() is None:
            again.kill()
        said = " ".join(said_to.read_text(errors="replace").split())
        assert again.returncode == 0, f"{progress}\n{said[-3000:]}"
        assert "resumed" in said and "aliases switched" in said, said
        assert store.served() == segments_collection(new_model)
        assert store.served(VIDEOS_ALIAS) == videos_collection(new_model)
        _every_video_once(store, old, new_model)
        chaos = Filters(tenant="reindex-chaos").compile()
        assert store.count(chaos, collection=SEGMENTS_ALIAS) == store.count(
            chaos, collection=segments_collection(old_model)
        )
    finally:
        if first.poll() is None:
            first.kill()
        replica.stop()
        store.switch_aliases(old_model)
        time.sleep(SETTLE_S)


def test_an_upload_embedded_by_the_old_model_and_indexed_after_the_switch_reaches_the_new_collections(
    common: CommonSettings, stack: object, media_root: Path, tmp_path: Path
) -> None:
    """The wait after the switch (`Reindex._drain`), proven by holding the indexer: stopped (SIGSTOP) once the passes
    before the switch are done, with an upload's old-model embeddings queued on `videos.embeddings`, and let go
    only after the settle. The coordinator waits for it, so its last passes carry that upload from the old
    collections into the new ones; without the wait they would find nothing and finish without it."""
    from services.stack import manager

    _catalogue(common, media_root, "reindex-drain", 1, seed=400)
    store = SegmentStore(common)
    old_model, _ = store.model_of(store.served() or "")
    new_spec = write_random_clip(tmp_path / "drain", seed=3, name="clip-tiny-drain")
    new_model = load_clip(str(new_spec)).ref
    clip = write_clip(media_root / "reindex-drain" / "queued.mp4", seconds=4.0, seed=401)
    queued = register(clip, tenant="reindex-drain")
    indexer = manager.service_pid(stack, "indexer")  # type: ignore[arg-type]
    supervisor = Proc("indexer", stack.run_dir).pid()  # type: ignore[attr-defined]
    assert indexer is not None and supervisor is not None
    held = (supervisor, indexer)  # its supervisor too: a held child fails liveness probes and would be killed
    run = Reindex(
        store, common, new_model, str(new_spec), Control(in_flight=4), settle_s=SETTLE_S, drain=stage_groups()
    )
    switch, drain = run._switch, run._drain
    released: list[float] = []
    drained: list[float] = []

    def release() -> None:
        for pid in reversed(held):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        released.append(time.monotonic())

    def switch_with_the_indexer_held(stop: threading.Event) -> None:
        tap = TopicTap(common, (Topics.EMBEDDINGS,))
        for pid in held:
            os.kill(pid, signal.SIGSTOP)
        try:
            publisher = Publisher(common, "test")
            publisher.publish(Topics.UPLOADED, queued)
            publisher.flush()
            publisher.close()
            deadline = time.monotonic() + 60
            while True:
                embedded = [SegmentEmbedding.model_validate_json(v) for v in tap.values(Topics.EMBEDDINGS, settle_s=0)]
                mine = [e for e in embedded if e.event_id == queued.event_id]
                if mine and len(mine) == mine[0].segment_count:
                    break
                assert time.monotonic() < deadline, "the upload was not embedded"
                time.sleep(0.2)
            assert {e.model.version for e in mine} == {old_model.version}
        except BaseException:
            release()
            raise
        finally:
            tap.close()
        threading.Timer(SETTLE_S + 4, release).start()  # 4 s after the settle: the passes would run by then
        switch(stop)

    def timed_drain(stop: threading.Event) -> None:
        drain(stop)
        drained.append(time.monotonic())

    run._switch = switch_with_the_indexer_held  # type: ignore[method-assign]
    run._drain = timed_drain  # type: ignore[method-assign]
    try:
        report = run.run()
        assert report.switched and report.failed == {}
        assert released and drained and drained[0] > released[0], "the run did not wait for the indexer"
        ours, fields = Filters(video_ids=[queued.video_id]).compile(), ["segment_index", "event_id"]
        before = store.rows(ours, fields, collection=segments_collection(old_model))
        after = store.rows(ours, fields, collection=segments_collection(new_model))
        assert {r["event_id"] for r in before} == {queued.event_id}, "indexed with the old model, after the switch"
        assert after, "the upload queued at the switch never reached the new collections"
        assert sorted(r["segment_index"] for r in after) == sorted(r["segment_index"] for r in before)
        assert all(is_backfill(r["event_id"]) for r in after)
    finally:
        release()
        store.switch_aliases(old_model)
        time.sleep(SETTLE_S)
