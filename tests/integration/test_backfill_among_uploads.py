"""After a reindex's switch its backfills reach the indexer among the uploads (the backfill consumer hands a served
model's embeddings to `videos.embeddings`, keyed by video), so one consumer orders a late backfill against a
re-upload of the same video: on the running stack's indexer, the re-upload stands whichever came first, in one
batch or in two; a backfill alone is written and completes on `videos.backfill.indexed` only (no acks, no
`videos.indexed`: webhooks, QC and duplicates never see it); a backfill the indexer refuses goes to
`videos.backfill.deadletter` (the upload's status stands); a backfill of a model not served is written by the
backfill consumer itself."""

from __future__ import annotations

import os
import signal
import time
import uuid
from datetime import timedelta
from typing import Any

import numpy as np
from confluent_kafka import Producer

from services.common.filters import Filters
from services.common.kafka.config import producer_config
from services.common.kafka.lag import Backlog
from services.common.messages import (
    DeadLetter,
    ModelRef,
    SegmentEmbedding,
    SegmentIndexed,
    Topics,
    VideoIndexed,
    VideoInfo,
    is_backfill,
    utcnow,
)
from services.common.settings import CommonSettings, stage_group_id
from services.common.triton import ClipClient
from services.common.vectors import SegmentStore, segments_collection
from tests.ledger import TopicTap

OUTPUTS = (
    Topics.EMBEDDINGS,
    Topics.SEGMENTS_INDEXED,
    Topics.INDEXED,
    Topics.BACKFILL_INDEXED,
    Topics.DEAD_LETTER,
    Topics.BACKFILL_DEAD_LETTER,
)


def _segments(
    model: ModelRef, video: str, event: str, count: int, direction: np.ndarray, tenant: str, age_s: int
) -> list[SegmentEmbedding]:
    vector = direction.tolist()
    info = VideoInfo(uri=f"file:///{video}.mp4", tenant=tenant, uploaded_at=utcnow() - timedelta(seconds=age_s))
    return [
        SegmentEmbedding(
            event_id=event,
            video_id=video,
            segment_index=i,
            segment_count=count,
            start_s=2.0 * i,
            end_s=2.0 * i + 2,
            keyframe_times=[2.0 * i + 1],
            vector=vector,
            model=model,
            video=info,
        )
        for i in range(count)
    ]


def _publish(common: CommonSettings, topic: str, *messages: SegmentEmbedding) -> None:
    producer = Producer(producer_config(common))
    for m in messages:
        producer.produce(topic, key=m.video_id.encode(), value=m.model_dump_json().encode())
    assert producer.flush(30) == 0


def _taken(common: CommonSettings, topic: str = Topics.EMBEDDINGS, group: str = "") -> None:
    """Until a group of the stack's indexer has taken everything on `topic` (its committed offsets)."""
    backlog = Backlog(common, topic, group or stage_group_id("indexer"))
    try:
        deadline = time.monotonic() + 120
        while not backlog.drained():
            assert time.monotonic() < deadline, f"the indexer did not take {topic}"
            time.sleep(0.5)
    finally:
        backlog.close()


def test_a_late_backfill_never_replaces_a_reupload_and_stays_off_the_uploads_topics(
    common: CommonSettings, stack: object
) -> None:
    from services.stack import manager

    store = SegmentStore(common)
    tenant = f"amid-{uuid.uuid4().hex[:6]}"
    model = ClipClient(common.triton_grpc_url).embed_texts(["probe"])[1]  # what the stack's embedder stamps
    segments = segments_collection(model)
    rng = np.random.default_rng(3)
    old, new = rng.normal(size=model.dim), rng.normal(size=model.dim)
    new = new - np.dot(new, old) / np.dot(old, old) * old  # orthogonal: a row says which version wrote it
    old, new = old / np.linalg.norm(old), new / np.linalg.norm(new)
    suffix = uuid.uuid4().hex[:6]

    def version(video: str, kind: str, of: ModelRef = model) -> list[SegmentEmbedding]:
        if kind == "backfill":  # the old collections' version, 3 segments, a minute older
            return _segments(of, video, f"backfill-{uuid.uuid4().hex}", 3, old, tenant, 60)
        return _segments(of, video, f"up-{uuid.uuid4().hex}", 2, new, tenant, 0)

    tap = TopicTap(common, OUTPUTS)
    cases = {  # video -> the order its two versions reach the indexer; in one batch or one after the other
        f"both-upload-first-{suffix}": ("upload", "backfill", True),
        f"both-backfill-first-{suffix}": ("backfill", "upload", True),
        f"apart-upload-first-{suffix}": ("upload", "backfill", False),
        f"apart-backfill-first-{suffix}": ("backfill", "upload", False),
    }
    uploads: dict[str, str] = {}
    backfills: dict[str, str] = {}
    pairs = {}
    for video, (first, second, _) in cases.items():
        pairs[video] = version(video, first), version(video, second)
        uploads[video] = next(p for p in pairs[video] if not is_backfill(p[0].event_id))[0].event_id
        backfills[video] = next(p for p in pairs[video] if is_backfill(p[0].event_id))[0].event_id
    indexer = manager.service_pid(stack, "indexer")  # type: ignore[arg-type]
    assert indexer is not None
    os.kill(indexer, signal.SIGSTOP)  # held while both versions are queued: it takes them in one batch
    try:
        for video, (_, _, together) in cases.items():
            a, b = pairs[video]
            _publish(common, Topics.EMBEDDINGS, *a, *(b if together else []))
        time.sleep(0.5)
    finally:
        os.kill(indexer, signal.SIGCONT)
    _taken(common)
    _publish(
        common,
        Topics.EMBEDDINGS,
        *(m for video, (_, _, together) in cases.items() if not together for m in pairs[video][1]),
    )
    alone = version(f"alone-{suffix}", "backfill")
    refused = [e.model_copy(update={"vector": [1.0, 0.0, 0.0]}) for e in version(f"refused-{suffix}", "backfill")]
    _publish(common, Topics.EMBEDDINGS, *alone, refused[0])
    _taken(common)
    # on the backfill's own topic: for the served model handed to the uploads' consumer, for another written there
    assert store.served() == segments
    handed = version(f"handed-{suffix}", "backfill")
    other = ModelRef(name=model.name, version=f"{model.version}-{suffix}", dim=model.dim)
    kept_apart = version(f"apart-{suffix}", "backfill", other)
    _publish(common, Topics.BACKFILL_EMBEDDINGS, *handed, *kept_apart)
    _taken(common, Topics.BACKFILL_EMBEDDINGS, f"{stage_group_id('indexer')}-backfill")
    _taken(common)

    fields = ["video_id", "segment_index", "event_id", "vector"]
    rows = store.rows(Filters(tenant=tenant).compile(), fields, segments)
    by_video: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_video.setdefault(str(row["video_id"]), []).append(row)
    for video, event in uploads.items():
        found = by_video[video]
        assert sorted(r["segment_index"] for r in found) == [0, 1], video
        assert {r["event_id"] for r in found} == {event}, video
        assert all(np.dot(np.asarray(r["vector"]), new) > 0.99 for r in found), video
    assert sorted(r["segment_index"] for r in by_video[alone[0].video_id]) == [0, 1, 2]
    assert sorted(r["segment_index"] for r in by_video[handed[0].video_id]) == [0, 1, 2]
    assert refused[0].video_id not in by_video
    elsewhere = store.rows(
        Filters(video_ids=[kept_apart[0].video_id]).compile(), ["event_id"], segments_collection(other)
    )
    assert len(elsewhere) == 3 and kept_apart[0].video_id not in by_video

    out = {topic: tap.values(topic) for topic in OUTPUTS}
    tap.close()
    acked = {SegmentIndexed.model_validate_json(v).event_id for v in out[Topics.SEGMENTS_INDEXED]}
    completed = {VideoIndexed.model_validate_json(v).event_id for v in out[Topics.INDEXED]}
    backfilled = {VideoIndexed.model_validate_json(v).event_id for v in out[Topics.BACKFILL_INDEXED]}
    letters = [DeadLetter.model_validate_json(v) for v in out[Topics.DEAD_LETTER]]
    backfill_letters = [DeadLetter.model_validate_json(v) for v in out[Topics.BACKFILL_DEAD_LETTER]]
    among_uploads = {SegmentEmbedding.model_validate_json(v).event_id for v in out[Topics.EMBEDDINGS]}
    assert handed[0].event_id in among_uploads and kept_apart[0].event_id not in among_uploads
    mine = {*backfills.values(), alone[0].event_id, refused[0].event_id, handed[0].event_id, kept_apart[0].event_id}
    assert set(uploads.values()) <= acked and set(uploads.values()) <= completed
    assert not mine & (acked | completed), "a backfill reached the uploads' topics"
    # written whole and complete: alone, or before its re-upload arrived (which then replaced it)
    written = {alone[0].event_id, handed[0].event_id, kept_apart[0].event_id}
    assert backfilled & mine == written | {backfills[f"apart-backfill-first-{suffix}"]}
    assert not [d for d in letters if d.key and d.key.endswith(suffix)], "a backfill's failure reached the uploads'"
    assert [(d.service, d.reason) for d in backfill_letters if d.key == refused[0].video_id] == [
        ("indexer", "milvus_rejected")
    ]
