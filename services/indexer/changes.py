"""Deletes and metadata patches of indexed videos: `videos.deleted` and `videos.updated`.

A delete removes the video's rows from every model's collections and announces `videos.removed` in the
same transaction as its offset; a patch rewrites title/creator/tags/metadata in place, vectors untouched. Both
are recorded as the video's override first, which every later write of an embedding honours (see
`services/common/vectors/overrides.py`), so neither depends on arriving after the video's segments.
"""

from __future__ import annotations

from typing import Any

from services.common.kafka.processor import Outgoing, ProcessorConfig, Received, Result, TransactionalProcessor
from services.common.messages import Topics, VideoDeleted, VideoRemoved, VideoUpdated
from services.common.vectors import SegmentStore
from services.common.vectors.overrides import PATCHABLE, epoch_ms
from services.indexer.settings import IndexerSettings


class Changes:
    def __init__(self, store: SegmentStore) -> None:
        self.store = store

    def handle(self, batch: list[Received[Any]]) -> list[Result]:
        results: list[Result] = []
        for received in batch:
            change = received.value
            if isinstance(change, VideoDeleted):
                collections = self.store.delete_video(change.video_id, change.tenant, epoch_ms(change.deleted_at))
                removed = VideoRemoved(
                    event_id=change.event_id,
                    video_id=change.video_id,
                    tenant=change.tenant,
                    deleted_at=change.deleted_at,
                    collections=collections,
                )
                results.append(Outgoing(Topics.REMOVED, removed, change.video_id, received, unique=change.event_id))
            elif isinstance(change, VideoUpdated):
                patch = {k: v for k in PATCHABLE if (v := getattr(change, k)) is not None}
                self.store.patch_video(change.video_id, change.tenant, patch, epoch_ms(change.updated_at))
        return results


def build_changes(settings: IndexerSettings, store: SegmentStore) -> TransactionalProcessor[Any]:
    config = ProcessorConfig(
        service="indexer",
        group_id=f"{settings.group_id}-changes",
        input_topic=Topics.DELETED,
        more_topics=(Topics.UPDATED,),
        max_batch=50,
        max_wait_s=settings.max_wait_s,
        handle_timeout_s=300.0,
        **settings.common.processor_fields(),
    )
    return TransactionalProcessor.for_topics(settings.common, config, Changes(store).handle, store.ready)
