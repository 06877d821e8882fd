"""The indexer stage: upsert rows, then ack each segment in the same transaction as the offsets.

Rows are written before the transaction commits, so a crash in between replays the batch: the upsert
rewrites identical rows (primary key from video, segment, model version) and the enricher dedups acks.
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
)
from services.common.messages import SegmentEmbedding, SegmentIndexed, Topics
from services.common.vectors import SegmentStore, segments_collection
from services.indexer.settings import IndexerSettings


class Indexer:
    def __init__(self, store: SegmentStore) -> None:
        self.store = store

    def handle(self, batch: list[Received[SegmentEmbedding]]) -> list[Result]:
        by_model: dict[Any, list[Received[SegmentEmbedding]]] = defaultdict(list)
        for received in batch:
            by_model[received.value.model].append(received)
        results: list[Result] = []
        for model, group in by_model.items():
            # raises TransientError (Milvus down: retried) or PermanentError (rows refused: isolated, dead-lettered)
            self.store.write_segments(model, [r.value for r in group])
            collection = segments_collection(model)
            for r in group:
                e = r.value
                ack = SegmentIndexed(
                    event_id=e.event_id,
                    video_id=e.video_id,
                    segment_index=e.segment_index,
                    segment_count=e.segment_count,
                    collection=collection,
                    model_version=model.version,
                )
                results.append(Outgoing(Topics.SEGMENTS_INDEXED, ack, e.video_id, r))
        return results


def build(settings: IndexerSettings) -> TransactionalProcessor[SegmentEmbedding]:
    store = SegmentStore(settings.common)
    indexer = Indexer(store)
    config = ProcessorConfig(
        service="indexer",
        group_id=settings.group_id,
        input_topic=Topics.EMBEDDINGS,
        max_batch=settings.max_batch_messages,
        max_wait_s=settings.max_wait_s,
        handle_timeout_s=300.0,
        **settings.common.retry_policy(),
    )
    return TransactionalProcessor(settings.common, config, SegmentEmbedding, indexer.handle, store.ready)
