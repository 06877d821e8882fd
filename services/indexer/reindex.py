"""`clipstream reindex --model NEW`: re-embed the whole catalogue with another CLIP through the pipeline.

The coordinator publishes one backfill event per catalogued video (`videos.backfill`); the decoder, embedder
and indexer consume the backfill topics in their own consumer groups (so a reindex scales with the stages'
replicas and their autoscalers, as ingest does), each replica only while its fresh uploads are quiet, and the
indexer writes into the new model's collections, which nothing serves yet. Then both aliases switch, each in
one atomic metadata operation. Searches answer from the old collections throughout and from the new ones after
the switch (the search engine embeds queries in-process with the new model until Triton serves it).

Flow control is the coordinator's: at most `in_flight` videos published and not yet indexed, at most `rate`
published a second, none while paused. What is done is read from the collections themselves (a video is done
when the new collection holds it at the upload time the old one has), so a coordinator that crashes resumes by
starting again: it republishes only what is not done (an event in flight when it died may be published twice;
the indexer rewrites the same rows, keyed by video, segment and model). A video whose backfill was
dead-lettered (`videos.backfill.deadletter`) is failed: the aliases stay put unless `force` is set, because
switching would make it unsearchable.

Uploads keep arriving meanwhile and land in the old collections: passes repeat until one finds nothing, then
the switch, `settle_s` for the embedder to notice it (from then on it embeds new uploads with the served
model), a wait until the fresh embedder and indexer have taken what was queued (the old model's last
embeddings are in the old collections by then), and passes again, so no upload is left behind in the
collections nothing serves. The backfills of those passes reach the indexer among the uploads (its backfill
consumer hands a served model's embeddings to `videos.embeddings`), so a re-upload of the same video is ordered
against them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from confluent_kafka import Consumer, TopicPartition

from services.common.filters import Filters
from services.common.kafka.config import consumer_config
from services.common.kafka.lag import Backlog
from services.common.kafka.publisher import Delivery, NotDelivered, Publisher
from services.common.messages import (
    BACKFILL_EVENT_PREFIX,
    BackfillTarget,
    DeadLetter,
    ModelRef,
    Topics,
    VideoBackfill,
    VideoInfo,
    event_id_of,
    is_backfill,
)
from services.common.settings import CommonSettings, stage_group_id
from services.common.vectors import (
    TAG_FIELDS,
    VIDEO_FIELDS,
    VIDEOS_ALIAS,
    SegmentStore,
    segments_collection,
    videos_collection,
)

log = logging.getLogger(__name__)

LOOKUP = 100  # videos per Milvus read (`video_id in [...]`)
SEGMENT_LOOKUP = 8  # videos per read of their segments: 8 x the decoder's cap of 2,000 stays under 16,384 rows
STALL_S = 60.0  # in flight and nothing indexed this long: said in the log, with the videos waited for


@dataclass
class ReindexReport:
    collection: str = ""
    videos: int = 0
    published: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    switched: bool = False
    resumed: bool = False


@dataclass(frozen=True)
class ReindexProgress:
    """What the CLI's bar and `GET /v1/reindex` show."""

    model: str
    collection: str
    state: str  # starting, running, paused, switching, done, stopped
    total: int
    done: int
    failed: int
    in_flight: int
    published: int
    rate_per_s: float  # videos done a second over the last minute
    eta_s: float | None
    switched: bool


@dataclass(frozen=True)
class Control:
    """Flow control, changeable while a run goes (`PUT /v1/reindex`)."""

    rate: float = 0.0  # videos published a second at most; 0: unlimited
    in_flight: int = 64  # published and not yet indexed, at most


class Reindex:
    def __init__(
        self,
        store: SegmentStore,
        settings: CommonSettings,
        target: ModelRef,
        spec: str,
        control: Control | None = None,
        settle_s: float = 15.0,
        force: bool = False,
        poll_s: float = 0.5,
        *,
        drain: Sequence[tuple[str, str]],
    ) -> None:
        """`drain`: (topic, consumer group) of the fresh stages that embed and index, in pipeline order
        (`Topics.SEGMENTS` and the embedder's group, `Topics.EMBEDDINGS` and the indexer's): after the switch
        the run waits until each has taken what its topic held (see `_drain`)."""
        self.store = store
        self.settings = settings
        self.target = BackfillTarget(model=target, spec=spec)
        self.control = control or Control()
        self.settle_s = settle_s
        self.force = force
        self.poll_s = poll_s
        self.drain = tuple(drain)
        self.report = ReindexReport()
        self._state = "starting"
        self._paused = threading.Event()
        self._lock = threading.Lock()
        self._total = self._done = 0
        self._in_flight: dict[str, Version] = {}  # video id -> the old collections' version its event carries
        self._deliveries: dict[str, tuple[Delivery, dict[str, Any], int]] = {}  # video id -> (report, row, failures)
        self._retry: list[tuple[float, dict[str, Any], int]] = []  # (not before, row, failures) whose publish failed
        self._policy = settings.retry_policy()
        self._history: deque[tuple[float, int]] = deque()  # (monotonic time, done) over the last minute
        self._last_publish = float("-inf")

    # --- control ----------------------------------------------------------------------------------------

    def pause(self) -> None:
        """Publish nothing more; what is in flight finishes."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def set_control(self, control: Control) -> None:
        self.control = control

    def progress(self) -> ReindexProgress:
        with self._lock:
            rate = 0.0
            if len(self._history) > 1:
                (t0, d0), (t1, d1) = self._history[0], self._history[-1]
                rate = (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0
            remaining = max(self._total - self._done - len(self.report.failed), 0)
            state = "paused" if self._paused.is_set() and self._state == "running" else self._state
            return ReindexProgress(
                model=f"{self.target.model.name}:{self.target.model.version}",
                collection=self.report.collection,
                state=state,
                total=self._total,
                done=self._done,
                failed=len(self.report.failed),
                in_flight=len(self._in_flight),
                published=self.report.published,
                rate_per_s=round(rate, 3),
                eta_s=round(remaining / rate, 1) if rate > 0 else None,
                switched=self.report.switched,
            )

    # --- the run ----------------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> ReindexReport:
        stop = stop or threading.Event()
        served = self.store.served(VIDEOS_ALIAS)
        if served is None:
            raise RuntimeError("nothing is indexed yet: there is no catalogue to re-embed")
        model = self.target.model
        record = self._read_record()
        unfinished = bool(record) and not record.get("finished")
        after_switch = unfinished and bool(record.get("switched") or record.get("switching"))
        if self.store.model_of(served)[0].version == model.version and not after_switch:
            raise RuntimeError(f"{served} is already embedded with {model.name}:{model.version}")
        if unfinished:  # a run that died: its start (its dead letters are read from there) and its old collection
            self.report.resumed = True
            started_ms, old = int(record["started_ms"]), str(record["old"])
        else:
            started_ms, old = int(time.time() * 1000), served
            self._write_record({"started_ms": started_ms, "old": old, "spec": self.target.spec})
        self.report.collection = self.store.ensure_collections(model, spec=self.target.spec, serve=False)[0]
        publisher = Publisher(self.settings, "reindex")
        failures = _Failures(self.settings, started_ms)
        try:
            self._state = "running"
            if not after_switch:
                while self._pass(old, publisher, failures, stop):
                    pass
                if self.report.failed and not self.force:
                    log.warning("reindex left the aliases alone", extra={"failed": len(self.report.failed)})
                    self._state = "stopped"
                    return self.report
            self._switch(stop)  # again after a crash around the switch: switching is idempotent
            self._drain(stop)
            self._state = "running"
            while self._pass(old, publisher, failures, stop):
                pass
            self._state = "done"
            self._record(finished=True)
            return self.report
        finally:
            failures.close()
            publisher.close()
            if stop.is_set() and self._state != "done":
                self._state = "stopped"

    def _switch(self, stop: threading.Event) -> None:
        """Both aliases to the new collections, then `settle_s` for the stages to notice (uploads embedded with
        the old model meanwhile land in the old collections: the passes after this catch them up)."""
        self._state = "switching"
        self._record(switching=True)  # a crash from here on resumes as after a switch
        self.store.switch_aliases(self.target.model)
        self.report.switched = True
        self._record(switched=True)
        if stop.wait(self.settle_s):
            raise Interrupted("stopped after the switch")  # started again, it settles and catches up

    def _drain(self, stop: threading.Event) -> None:
        """Wait until the fresh embedder has taken every segment queued when it settled, then until the indexer
        has taken every embedding queued after that: segments it took before it noticed the switch were embedded
        with the old model and land in the old collections only; once they are indexed, the passes that follow
        see them there and backfill them (without this wait the last pass could find nothing while they were
        still queued, and they would never reach the new collections)."""
        for topic, group in self.drain:
            backlog = Backlog(self.settings, topic, group)
            try:
                since = time.monotonic()
                while not backlog.drained():
                    if stop.wait(self.poll_s):
                        raise Interrupted("stopped while the stages drain after the switch")
                    if time.monotonic() - since > STALL_S:
                        hint = (
                            ""
                            if backlog.committed_any
                            else " (it has committed nothing there: is it the stage's group?)"
                        )
                        log.warning(f"{group} has not taken what {topic} held at the switch for {STALL_S:.0f} s{hint}")
                        since = time.monotonic()
            finally:
                backlog.close()

    def _pass(self, old: str, publisher: Publisher, failures: _Failures, stop: threading.Event) -> bool:
        """Publish what the new collection lacks (new or newer in the old one) and wait until it is indexed or
        failed; whether there was anything to do."""
        todo = self._todo(old)
        if not todo:
            return False
        pending = deque(todo)
        rows: deque[dict[str, Any]] = deque()
        moved = (time.monotonic(), self._done)
        while (pending or rows or self._in_flight or self._retry) and not stop.is_set():
            self._settle(failures, old)
            now = time.monotonic()
            while self._retry and self._retry[0][0] <= now and self._may_publish():
                _, row, failed = self._retry.pop(0)
                self._publish(publisher, row, failed)
            if self._done != moved[1]:
                moved = (time.monotonic(), self._done)
            elif time.monotonic() - moved[0] > STALL_S and self._in_flight:
                waiting = sorted(self._in_flight)[:10]
                log.warning(f"nothing indexed for {STALL_S:.0f} s, waiting for {waiting}", extra={"waiting": waiting})
                moved = (time.monotonic(), self._done)
            while (pending or rows) and self._may_publish():
                if not rows:
                    batch = [pending.popleft() for _ in range(min(LOOKUP, len(pending)))]
                    versions = self._old_versions(old, batch)
                    found = self.store.rows(Filters(video_ids=batch).compile(), VIDEO_FIELDS, collection=old)
                    # a video deleted since the catalogue was read has no row (or no segment): nothing to publish
                    rows.extend(r | {VERSION: versions[r["video_id"]]} for r in found if r["video_id"] in versions)
                    continue
                self._publish(publisher, rows.popleft())
            stop.wait(self.poll_s)
        if stop.is_set():
            raise Interrupted("stopped")
        return True

    def _todo(self, old: str) -> list[str]:
        """The old collection's videos the new one lacks whole at their version or a later one (and that have not
        failed)."""
        model = self.target.model
        held = self._held(None)
        old_versions = self._old_versions(old, None)
        todo, total = [], 0
        for video_id, stands in old_versions.items():
            total += 1
            if not current(held.get(video_id), stands, model, video_id) and video_id not in self.report.failed:
                todo.append(video_id)
        with self._lock:
            self._total, self._done = total, total - len(todo) - len(self.report.failed)
            self._history.append((time.monotonic(), self._done))
        self.report.videos = self._done
        return todo

    def _held(self, video_ids: list[str] | None) -> dict[str, Version]:
        """Of these videos (None: all), those whose every segment the new collections hold at one version, with
        that version: a video's row is written with its first segment, so the row alone does not mean done, and
        within one second two backfills differ by their event id alone, so only segments written under the first
        segment's event count."""
        fields = ["video_id", "uploaded_at", "segment_count"]
        segment_fields = ["video_id", "segment_index", "uploaded_at", "event_id"]
        found: dict[str, Version] = {}
        for rows, segments in self._read_held(video_ids, fields, segment_fields):
            events: dict[str, Counter[str]] = {}  # video -> event id -> segments of this version written under it
            first: dict[str, str] = {}
            for seg in segments:
                if _counts(seg, rows.get(seg["video_id"])):
                    events.setdefault(seg["video_id"], Counter())[seg["event_id"]] += 1
                    if seg["segment_index"] == 0:
                        first[seg["video_id"]] = seg["event_id"]
            found.update(
                (v, Version(r["uploaded_at"], first[v]))
                for v, r in rows.items()
                if v in first and events[v][first[v]] >= r["segment_count"]
            )
        return found

    def _read_held(
        self, video_ids: list[str] | None, fields: list[str], segment_fields: list[str]
    ) -> Iterator[tuple[dict[str, dict[str, Any]], Iterable[dict[str, Any]]]]:
        """(video rows by id, their segment rows) of the new collections: the whole of them in one go when
        `video_ids` is None (a pass), else a few videos a read (a query returns at most 16,384 rows)."""
        model = self.target.model
        if video_ids is None:
            rows = {
                r["video_id"]: r for b in self.store.iter_rows(videos_collection(model), fields, batch=1000) for r in b
            }
            segments = (
                r for b in self.store.iter_rows(segments_collection(model), segment_fields, batch=1000) for r in b
            )
            yield rows, segments  # streamed: the catalogue's segments are never in memory at once
            return
        for start in range(0, len(video_ids), LOOKUP):
            expr = Filters(video_ids=video_ids[start : start + LOOKUP]).compile()
            rows = {r["video_id"]: r for r in self.store.rows(expr, fields, collection=videos_collection(model))}
            ids = list(rows)
            for at in range(0, len(ids), SEGMENT_LOOKUP):
                part = {v: rows[v] for v in ids[at : at + SEGMENT_LOOKUP]}
                expr = Filters(video_ids=list(part)).compile()
                yield part, self.store.rows(expr, segment_fields, collection=segments_collection(model))

    def _old_versions(self, old: str, video_ids: list[str] | None) -> dict[str, Version]:
        """The version the old collections hold of these videos (None: all): the video row's upload time and its
        first segment's event id (the upload's, or the backfill's of an earlier reindex); "" when that segment
        is missing or from another upload (dead-lettered there: the video is still catalogued, and backfilled)."""
        segments = segments_collection(self.store.model_of(old)[0])
        video_rows: Iterable[dict[str, Any]]
        first_rows: Iterable[dict[str, Any]]
        fields = ["video_id", "uploaded_at", "event_id"]
        if video_ids is None:
            video_rows = (r for b in self.store.iter_rows(old, ["video_id", "uploaded_at"], batch=1000) for r in b)
            first_rows = (r for b in self.store.iter_rows(segments, fields, "segment_index == 0", 1000) for r in b)
        else:
            expr = Filters(video_ids=video_ids).compile()
            video_rows = self.store.rows(expr, ["video_id", "uploaded_at"], collection=old)
            first_rows = self.store.rows(f"{expr} and segment_index == 0", fields, collection=segments)
        first = {r["video_id"]: (r["uploaded_at"], r["event_id"]) for r in first_rows}
        found = {}
        for row in video_rows:
            at, event = first.get(row["video_id"], (None, ""))
            found[row["video_id"]] = Version(row["uploaded_at"], event if at == row["uploaded_at"] else "")
        return found

    def _may_publish(self) -> bool:
        control = self.control
        if self._paused.is_set() or len(self._in_flight) >= control.in_flight:
            return False
        return control.rate <= 0 or time.monotonic() - self._last_publish >= 1.0 / control.rate

    def _publish(self, publisher: Publisher, row: dict[str, Any], failures: int = 0) -> None:
        info = VideoInfo(
            uri=row["uri"],
            creator=row["creator"],
            tenant=row["tenant"],
            title=row["title"],
            uploaded_at=datetime.fromtimestamp(row["uploaded_at"], UTC),
            tags=[row[t] for t in TAG_FIELDS if row.get(t)],
            metadata=row.get("metadata") or {},
            width=row.get("width") or 0,
            height=row.get("height") or 0,
            duration_s=row.get("duration_s") or 0.0,
        )
        version: Version = row[VERSION]
        event = VideoBackfill(
            event_id=backfill_event_id(self.target.model, row["video_id"], version.event_id),
            video_id=row["video_id"],
            video=info,
            target=self.target,
        )
        try:
            delivery = publisher.publish(Topics.BACKFILL, event)
        except NotDelivered as exc:  # not even queued (the local queue is full: Kafka has been away)
            delivery = Delivery()
            delivery.set_exception(exc)
        self._deliveries[row["video_id"]] = (delivery, row, failures)
        self._in_flight[row["video_id"]] = version
        self._last_publish = time.monotonic()
        self.report.published += 1

    def _settle(self, failures: _Failures, old: str) -> None:
        """Take in-flight videos that are now indexed whole (read from the new collections), dead-lettered, or no
        longer catalogued at that version (deleted or re-uploaded meanwhile: the next pass sees what stands)."""
        self._redeliver()
        for video_id, event_id, reason in failures.poll():
            version = self._in_flight.get(video_id)
            if version is not None and event_id == backfill_event_id(self.target.model, video_id, version.event_id):
                del self._in_flight[video_id]
                self.report.failed[video_id] = reason
        newly = 0
        for video_id, held in self._held(list(self._in_flight)).items():
            if current(held, self._in_flight[video_id], self.target.model, video_id):
                del self._in_flight[video_id]
                newly += 1
        waiting = list(self._in_flight)
        for start in range(0, len(waiting), LOOKUP):
            batch = waiting[start : start + LOOKUP]
            stands = self._old_versions(old, batch)
            for video_id in batch:
                if stands.get(video_id) != self._in_flight[video_id]:
                    del self._in_flight[video_id]
        now = time.monotonic()
        with self._lock:
            self._done += newly
            self.report.videos = self._done
            self._history.append((now, self._done))
            while len(self._history) > 2 and now - self._history[0][0] > 60:
                self._history.popleft()

    def _redeliver(self) -> None:
        """Events Kafka refused (or never took within the producer's message timeout) go out again after the
        retry policy's backoff; after its last attempt the video is failed, with Kafka's reason. Delivered ones
        are forgotten (the stages' dead letters and the collections say the rest)."""
        for video_id, (delivery, row, failed) in list(self._deliveries.items()):
            if not delivery.done():
                continue
            del self._deliveries[video_id]
            error = delivery.exception()
            if error is None or self._in_flight.get(video_id) != row[VERSION]:
                continue
            del self._in_flight[video_id]
            failed += 1
            if failed >= self._policy.max_attempts:
                self.report.failed[video_id] = f"reindex: {str(error)[:300]}"  # its reason first: kafka_unavailable
                continue
            log.warning("backfill event not delivered: publishing it again", extra={"video_id": video_id})
            self._retry.append((time.monotonic() + self._policy.backoff_s(failed), row, failed))
            self._retry.sort(key=lambda entry: entry[0])

    # --- the run's record: what a restarted coordinator resumes -------------------------------------------

    def _record_path(self) -> Path:
        return self.settings.home / "reindex" / f"{self.target.model.version}.json"

    def _read_record(self) -> dict[str, Any]:
        path = self._record_path()
        return json.loads(path.read_text()) if path.exists() else {}

    def _record(self, **update: Any) -> None:
        self._write_record(self._read_record() | update)

    def _write_record(self, record: dict[str, Any]) -> None:
        path = self._record_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)


def stage_groups() -> tuple[tuple[str, str], ...]:
    """What a reindex drains after its switch (`Reindex(drain=...)`): the fresh embedder's and indexer's input
    topics and consumer groups, as their settings (and env) name them."""
    return ((Topics.SEGMENTS, stage_group_id("embedder")), (Topics.EMBEDDINGS, stage_group_id("indexer")))


class Interrupted(Exception):
    """The run was stopped before it finished; started again, it resumes."""


def _counts(segment: dict[str, Any], video: dict[str, Any] | None) -> bool:
    """Whether a segment row belongs to the version of its video that the video row describes."""
    return (
        video is not None
        and segment["uploaded_at"] == video["uploaded_at"]
        and (segment["segment_index"] < video["segment_count"])
    )


class Version(NamedTuple):
    """A video's version as a collection holds it."""

    uploaded_at: int  # s
    event_id: str  # of its first segment's row: the upload's, or the backfill's that wrote it


VERSION = "_version"  # the key under which a row to publish carries the old collections' version


def current(held: Version | None, old: Version, model: ModelRef, video_id: str) -> bool:
    """Whether the new collections' whole `held` version is the old collections' `old` or later: a later upload
    time; or at the same second the backfill of that very version, or an upload written there directly (which
    happens only after the switch, so it is the later one: Kafka orders a video's events). Upload times are
    whole seconds, so a re-upload within the second of its predecessor differs by its event id alone."""
    if held is None:
        return False
    if held.uploaded_at != old.uploaded_at:
        return held.uploaded_at > old.uploaded_at
    return held.event_id == backfill_event_id(model, video_id, old.event_id) or not is_backfill(held.event_id)


def backfill_event_id(model: ModelRef, video_id: str, version_event_id: str) -> str:
    """The same for the same video version (the event id of the rows the old collections hold) and target: a
    republished event rewrites the same rows; a re-upload, even within the same second, is another event."""
    digest = hashlib.sha256(f"{model.version}\0{video_id}\0{version_event_id}".encode()).hexdigest()
    return f"{BACKFILL_EVENT_PREFIX}{digest[:40]}"


class _Failures:
    """The backfill's dead letters since the run began (read from `started_ms` on, as a resumed run must see
    the failures of the events it published before it died): video id -> (event id, reason)."""

    def __init__(self, settings: CommonSettings, started_ms: int) -> None:
        self._consumer = Consumer(
            consumer_config(settings, f"clipstream-reindex-{started_ms}", **{"enable.partition.eof": False})
        )
        meta = self._consumer.list_topics(Topics.BACKFILL_DEAD_LETTER, timeout=30)
        partitions = [
            TopicPartition(Topics.BACKFILL_DEAD_LETTER, p, started_ms)
            for p in meta.topics[Topics.BACKFILL_DEAD_LETTER].partitions
        ]
        self._consumer.assign(self._consumer.offsets_for_times(partitions, timeout=30))

    def poll(self) -> list[tuple[str, str, str]]:
        """(video id, event id, reason) of each dead letter since the last poll."""
        found: list[tuple[str, str, str]] = []
        for msg in self._messages():
            letter = DeadLetter.model_validate_json(msg.value() or b"")
            event_id = event_id_of(letter.payload)  # a payload cut at 64 KiB keeps its head
            if letter.key and event_id:
                reason = f"{letter.service}: {letter.reason}: {letter.detail[:300]}"
                found.append((letter.key, event_id, reason))
        return found

    def _messages(self) -> Iterator[Any]:
        for msg in self._consumer.consume(500, 0):
            if msg.error() is None:
                yield msg

    def close(self) -> None:
        self._consumer.close()
