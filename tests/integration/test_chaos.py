"""Break each component mid-ingest and count what came out: every upload indexed once or dead-lettered once.

Each scenario publishes the shared clips under its own tenant (so its video ids are its own), waits until
the pipeline is mid-work, then kills (SIGKILL) or pauses (SIGSTOP) one component, or scales a stage to two
replicas and back (partitions move twice while batches are in flight). Services come back by
themselves (the stack supervises them as Kubernetes would); infrastructure is restarted by the test, as an
operator's platform would. Then: each upload has exactly one committed `videos.indexed` or one dead
letter, no topic holds a duplicate, Milvus holds exactly the indexed segments, and the time from the fault
to the last outcome is recorded (printed as the README's table).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.common.filters import Filters
from services.common.kafka.publisher import Publisher
from services.common.messages import Topics, VideoDeleted, VideoUploaded
from services.common.vectors import VIDEOS_ALIAS, SegmentStore
from services.intake.registration import register
from services.intake.watch import UploadWatch
from services.media.synthetic import write_clip
from services.stack import manager
from services.stack.kafka import start_kafka
from services.stack.milvus import start_milvus_lite
from services.stack.process import Proc, http_ok
from services.stack.settings import StackSettings
from services.stack.triton import start_triton
from tests.clips import shared_clips
from tests.integration.conftest import SEARCH_URL, port
from tests.ledger import TopicTap

pytestmark = pytest.mark.chaos

# every third shared clip (9: mp4, mkv, avi, webm, small to large): a fault needs uploads in flight, not every
# codec (test_pipeline ingests all of them)
CLIPS = shared_clips()[::3]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
OUTCOME_TIMEOUT_S = 300
EMBEDDER_PORT_VAR, DECODER_PORT_VAR = "CLIPSTREAM_EMBEDDER_HEALTH_PORT", "CLIPSTREAM_DECODER_HEALTH_PORT"
READY_TIMEOUT_S = 60
RESULTS: list[tuple[str, int, int, int, int, float]] = []


@dataclass(frozen=True)
class Fault:
    name: str
    when_indexed: int  # strike once this many uploads are indexed (0: as soon as segments flow)
    strike: Callable[[StackSettings], None]


def _kill_service(name: str) -> Callable[[StackSettings], None]:
    def strike(settings: StackSettings) -> None:
        pid = manager.service_pid(settings, name)
        assert pid is not None, f"{name} is not running"
        os.kill(pid, signal.SIGKILL)  # its supervisor starts it again

    return strike


def _kill_infra(name: str, restart: Callable[[StackSettings], object], down_s: float = 2.0) -> Callable[..., None]:
    def strike(settings: StackSettings) -> None:
        proc = Proc(name, settings.run_dir)
        pid = proc.pid()
        assert pid is not None, f"{name} is not running"
        os.killpg(pid, signal.SIGKILL)
        while proc.running():
            time.sleep(0.05)
        time.sleep(down_s)
        restart(settings)

    return strike


def _pause_broker(seconds: float) -> Callable[[StackSettings], None]:
    def strike(settings: StackSettings) -> None:
        pid = Proc("kafka", settings.run_dir).pid()
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)

    return strike


def _second_replica(name: str, module: str, port_var: str, port: int) -> Callable[[StackSettings], None]:
    """Scale a stage to two replicas mid-ingest (partitions move while batches are in flight), then back."""

    def strike(settings: StackSettings) -> None:
        replica = Proc(f"{name}-2", settings.run_dir)
        replica.start([sys.executable, "-m", module], env={port_var: str(port)}, ports=[("127.0.0.1", port)])
        try:
            deadline = time.monotonic() + 60
            while not http_ok(f"http://127.0.0.1:{port}/readyz") and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(5)  # it owns partitions and works on some of them
        finally:
            replica.stop()  # leaves the group: its partitions move back mid-ingest

    return strike


FAULTS = [
    Fault("decoder", 0, _kill_service("decoder")),
    Fault("embedder", 0, _kill_service("embedder")),
    Fault("indexer", 2, _kill_service("indexer")),
    Fault("enricher", 1, _kill_service("enricher")),
    Fault("duplicates", 2, _kill_service("duplicates")),
    Fault("qc", 2, _kill_service("qc")),
    Fault("ocr", 1, _kill_service("ocr")),
    Fault("search", 0, _kill_service("search")),
    Fault("triton", 0, _kill_infra("triton", lambda s: start_triton(s, manager.ensure_model(s)))),
    Fault("milvus", 2, _kill_infra("milvus", start_milvus_lite)),
    Fault("kafka", 2, _kill_infra("kafka", start_kafka)),
    # longer than the transaction timeout (TEST_ENV): the broker aborts the open transactions meanwhile
    Fault("kafka-paused", 2, _pause_broker(20.0)),
    Fault("embedder-2-replicas", 0, _second_replica("embedder", "services.embedder", EMBEDDER_PORT_VAR, port(9212))),
    Fault("decoder-2-replicas", 0, _second_replica("decoder", "services.decoder", DECODER_PORT_VAR, port(9211))),
]


# the consumers of videos.indexed: one output per indexed upload
DOWNSTREAM = {"duplicates": Topics.DUPLICATES, "qc": Topics.QC}


def _every_service_ready_and_search_answers(timeout_s: float) -> None:
    ports = {name: int(os.environ[var]) for name, (_, var, _) in manager.SERVICES.items()}
    deadline = time.monotonic() + timeout_s
    waiting = dict(ports)
    while waiting and time.monotonic() < deadline:
        waiting = {n: p for n, p in waiting.items() if not http_ok(f"http://127.0.0.1:{p}/readyz")}
        time.sleep(0.5)
    assert not waiting, f"not ready {timeout_s:.0f}s after the fault: {sorted(waiting)}"
    answer = httpx.post(
        f"{SEARCH_URL}/v1/search/text", json={"query": "a street"}, headers={"X-API-Key": "key-a"}, timeout=60
    )
    assert answer.status_code == 200, answer.text


def _strike_mid_ingest(settings: StackSettings, watch: UploadWatch, uploads: list[VideoUploaded], fault: Fault) -> int:
    """Strike once `when_indexed` uploads are done; returns how many were done by then."""
    deadline = time.monotonic() + 120
    seen = 0
    while seen < fault.when_indexed and time.monotonic() < deadline:
        seen += len(watch.wait([u.event_id for u in uploads], 0.2).indexed)
    fault.strike(settings)
    return seen


@pytest.fixture(scope="module", autouse=True)
def results_table() -> Iterator[None]:
    """Writes the scenario table the README quotes to test-artifacts/chaos.md (chaos-gwN.md under xdist:
    the scenarios are split over the workers' stacks)."""
    yield
    lines = [
        "| scenario | uploads | indexed once | duplicates | dead letters | recovery s |",
        "|---|---|---|---|---|---|",
        *(f"| {name} | {n} | {ok} | {dup} | {dead} | {rec:.1f} |" for name, n, ok, dup, dead, rec in RESULTS),
    ]
    ARTIFACTS.mkdir(exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    (ARTIFACTS / (f"chaos-{worker}.md" if worker else "chaos.md")).write_text("\n".join(lines) + "\n")


@pytest.mark.skipif(len(CLIPS) < 5, reason="needs the shared clips")
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_mid_ingest_loses_and_duplicates_nothing(stack: StackSettings, fault: Fault) -> None:
    settings = stack
    tenant = f"chaos-{fault.name}"
    # a prompt makes every upload a generated video the QC stage checks (and must check once)
    uploads = [register(clip, tenant=tenant, creator="chaos", metadata={"prompt": "a street"}) for clip in CLIPS]
    events = {u.event_id for u in uploads}
    tap = TopicTap(settings.common)
    trigger = UploadWatch(settings.common)
    outcomes = UploadWatch(settings.common)
    publisher = Publisher(settings.common, "chaos-test")
    for upload in uploads:
        publisher.publish(Topics.UPLOADED, upload)
    publisher.flush()
    try:
        done_before = _strike_mid_ingest(settings, trigger, uploads, fault)
        struck = time.monotonic()
        done = outcomes.wait(events, OUTCOME_TIMEOUT_S)
        recovery_s = time.monotonic() - struck
        ledger = tap.read(events)
        if fault.name in DOWNSTREAM:  # that stage struck: one output per indexed upload, once it is back
            deadline = time.monotonic() + OUTCOME_TIMEOUT_S
            while any(ledger.count(DOWNSTREAM[fault.name], e) == 0 for e in done.indexed):
                assert time.monotonic() < deadline, f"uploads without {DOWNSTREAM[fault.name]}"
                time.sleep(2)
                ledger = tap.read(events)
            recovery_s = time.monotonic() - struck
        if fault.name == "ocr":  # the text stage struck: every segment of every indexed upload read once
            deadline = time.monotonic() + OUTCOME_TIMEOUT_S
            while any(len(ledger.segments(Topics.TEXT, e)) < i.segment_count for e, i in done.indexed.items()):
                assert time.monotonic() < deadline, "segments without videos.text"
                time.sleep(2)
                ledger = tap.read(events)
            recovery_s = time.monotonic() - struck
    finally:
        for closing in (trigger, outcomes, tap):
            closing.close()

    assert done_before < len(uploads), "the fault struck after the ingest had finished"
    missing = events - set(done.indexed) - set(done.failed)
    assert not missing, f"{len(missing)} uploads have no outcome {OUTCOME_TIMEOUT_S}s after {fault.name} broke"
    assert ledger.duplicates() == {}, f"duplicates after {fault.name}: {ledger.duplicates()}"
    for event in events:
        indexed, dead = ledger.count(Topics.INDEXED, event), len(ledger.dead.get(event, []))
        assert indexed + dead == 1, f"{event}: {indexed} indexed, {dead} dead letters"
        for topic in DOWNSTREAM.values():
            assert ledger.count(topic, event) <= 1, f"{event}: more than one message on {topic}"
    assert ledger.dead == {}, {e: [d.reason for d in ds] for e, ds in ledger.dead.items()}
    store = SegmentStore(settings.common)
    expected = sum(i.segment_count for i in done.indexed.values())
    rows = store.count(Filters(tenant=tenant).compile())
    store.delete(Filters(tenant=tenant).compile())  # later modules (reindex) re-decode the whole catalogue
    assert rows == expected
    _every_service_ready_and_search_answers(READY_TIMEOUT_S)
    RESULTS.append(
        (fault.name, len(uploads), len(done.indexed), len(ledger.duplicates()), len(ledger.dead), recovery_s)
    )
    print(f"\nchaos {fault.name}: {len(done.indexed)}/{len(uploads)} indexed once, recovered in {recovery_s:.1f}s")


def test_a_delete_survives_killing_the_indexer_as_it_removes_the_rows(stack: StackSettings, media_root: Path) -> None:
    """The delete hop (rows removed, one `videos.removed` in the offset's transaction) with the indexer
    SIGKILLed the moment the rows are gone: before its commit the delete is replayed, after it nothing is;
    either way the video stays gone and `videos.removed` is committed exactly once."""
    common = stack.common
    clip = write_clip(media_root / "chaos" / "delete-me.mp4", seconds=4.0, size=(320, 180), seed=501, cuts=(2.0,))
    upload = register(clip, tenant="chaos-delete")
    publisher = Publisher(common, "test")
    watch = UploadWatch(common)
    publisher.publish(Topics.UPLOADED, upload)
    publisher.flush()
    assert upload.event_id in watch.wait([upload.event_id], 300).indexed
    store = SegmentStore(common)
    ours = Filters(video_ids=[upload.video_id]).compile()
    assert store.count(ours) == 2
    tap = TopicTap(common)
    pid = manager.service_pid(stack, "indexer")
    assert pid is not None
    deleted = VideoDeleted(video_id=upload.video_id, tenant="chaos-delete")
    os.kill(pid, signal.SIGSTOP)  # hold it while the delete arrives, so the kill lands inside the hop
    publisher.publish(Topics.DELETED, deleted)
    publisher.flush()
    time.sleep(1.0)
    os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 60
    while store.count(ours):
        assert time.monotonic() < deadline, "the delete never reached the index"
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    _every_service_ready_and_search_answers(180)
    # killed before its commit, the delete is replayed once the restarted indexer has its partitions back and
    # the killed transaction is aborted (ready comes first): wait for the announcement, then for anything more
    deadline = time.monotonic() + OUTCOME_TIMEOUT_S
    while tap.read({deleted.event_id}, settle_s=0).count(Topics.REMOVED, deleted.event_id) == 0:
        assert time.monotonic() < deadline, "the delete was never announced on videos.removed"
        time.sleep(2)
    ledger = tap.read({deleted.event_id}, settle_s=10.0)
    assert ledger.count(Topics.REMOVED, deleted.event_id) == 1, ledger.counts
    assert store.count(ours) == 0 and store.count(ours, collection=VIDEOS_ALIAS) == 0
