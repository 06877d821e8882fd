"""The indexer stage: upsert rows, then ack each segment, and announce each upload whose segments are now all
durable (`videos.indexed`), in the same transaction as the offsets.

Rows are written before the transaction commits, so a crash in between replays the batch: the upsert
rewrites identical rows (primary key from video, segment, model version) and the replayed batch announces
the same completions again, in the one transaction that commits. Completion is read from the rows
themselves (their event id), so it needs no state that a crash could lose or double. Deletes and patches
(`changes.py`) run in the same process on their own group; the store's overrides make their order
against in-flight embeddings irrelevant.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from services.common.kafka.processor import (
    Outgoing,
    ProcessorConfig,
    Received,
    Result,
    TransactionalProcessor,
    backfill_config,
)
from services.common.messages import (
    ModelRef,
    SegmentEmbedding,
    SegmentIndexed,
    Topics,
    VideoIndexed,
    is_backfill,
    utcnow,
)
from services.common.telemetry import FRESHNESS
from services.common.vectors import SegmentStore, segments_collection
from services.indexer.changes import build_changes
from services.indexer.settings import IndexerSettings


class Indexer:
    """An upload's segments are acked on `videos.segments.indexed` and its completion goes to `videos.indexed`; a
    backfill's (a reindex's: on its own topic, or after the switch among the uploads, see `backfill`) has no acks
    and completes on `videos.backfill.indexed`: nothing downstream of ingest sees a reindex."""

    def __init__(self, store: SegmentStore) -> None:
        self.store = store

    def backfill(self, batch: list[Received[SegmentEmbedding]]) -> list[Result]:
        """The backfill consumer's: written here while its model's collections are not served; once they are (the
        reindex switched), handed to `videos.embeddings` (keyed by video, in this transaction) instead, where the
        uploads' consumer writes them: a video's partition has one consumer, which orders a late backfill against
        a re-upload of that video (its version check, `superseded`, is a read before a write: Milvus has no
        conditional write, so two consumers writing one video could each pass it)."""
        served = self.store.served()  # asked per batch: the switch may have happened a moment ago
        results: list[Result] = []
        rest: list[Received[SegmentEmbedding]] = []
        for r in batch:
            if forwarded(r.value.model, served):
                results.append(Outgoing(Topics.EMBEDDINGS, r.value, r.value.video_id, r))
            else:
                rest.append(r)
        return results + (self.handle(rest) if rest else [])

    def handle(self, batch: list[Received[SegmentEmbedding]]) -> list[Result]:
        by_model: dict[Any, list[Received[SegmentEmbedding]]] = defaultdict(list)
        for received in batch:
            by_model[received.value.model].append(received)
        results: list[Result] = []
        for model, group in by_model.items():
            # raises TransientError (Milvus down: retried) or PermanentError (rows refused: isolated, dead-lettered)
            written = self.store.write_segments(model, [r.value for r in group])
            collection = segments_collection(model)
            for r in group:
                e = r.value
                if is_backfill(e.event_id) or e.video_id in written.removed:
                    continue  # a backfill's; or deleted after this upload: no ack, no completion
                ack = SegmentIndexed(
                    event_id=e.event_id,
                    video_id=e.video_id,
                    segment_index=e.segment_index,
                    segment_count=e.segment_count,
                    collection=collection,
                    model_version=model.version,
                    **e.video.stamp(),
                )
                results.append(Outgoing(Topics.SEGMENTS_INDEXED, ack, e.video_id, r))
            by_event = {(r.value.video_id, r.value.event_id): r for r in group}
            for e in written.completed:
                done = VideoIndexed(
                    event_id=e.event_id,
                    video_id=e.video_id,
                    segment_count=e.segment_count,
                    collection=collection,
                    model_version=model.version,
                    **e.video.stamp(),
                )
                source = by_event[(e.video_id, e.event_id)]
                topic = Topics.BACKFILL_INDEXED if is_backfill(e.event_id) else Topics.INDEXED
                results.append(Outgoing(topic, done, e.video_id, source, unique=e.event_id))
        return results


def forwarded(model: ModelRef, served: str | None) -> bool:
    """Whether a backfill's embedding for `model` goes to the uploads' topic: its collections are the served ones."""
    return served is not None and segments_collection(model) == served


def observe_freshness(committed: list[Outgoing]) -> None:
    """Registration to searchable, once per upload: observed after the transaction that made it so."""
    now = utcnow()
    for out in committed:  # a backfill's completion (videos.backfill.indexed) is no upload's freshness
        done = out.message
        if out.topic == Topics.INDEXED and isinstance(done, VideoIndexed) and done.uploaded_at is not None:
            FRESHNESS.observe(max(0.0, (now - done.uploaded_at).total_seconds()))


def build(settings: IndexerSettings) -> list[TransactionalProcessor[Any]]:
    """The embeddings processor, the processor of deletes and patches, and the backfill's (each its own
    group, same process; the backfill held while fresh embeddings have work)."""
    store = SegmentStore(settings.common)
    indexer = Indexer(store)
    config = ProcessorConfig(
        service="indexer",
        group_id=settings.group_id,
        input_topic=Topics.EMBEDDINGS,
        max_batch=settings.max_batch_messages,
        max_wait_s=settings.max_wait_s,
        handle_timeout_s=300.0,
        on_committed=observe_freshness,
        **settings.common.processor_fields(),
    )
    embeddings = TransactionalProcessor.for_topics(settings.common, config, indexer.handle, store.ready)
    backfill_store = SegmentStore(settings.common)
    backfill = backfill_config(embeddings, Topics.BACKFILL_EMBEDDINGS, settings)
    backfilled = Indexer(backfill_store)
    return [
        embeddings,
        build_changes(settings, SegmentStore(settings.common)),
        TransactionalProcessor.for_topics(settings.common, backfill, backfilled.backfill, backfill_store.ready),
    ]
