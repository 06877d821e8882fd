"""The embedder stage: keyframes of many segments in one Triton round, one vector per segment out.

A segment's vector is the normalised mean of its keyframes' embeddings. Malformed JPEGs dead-letter their
segment alone; Triton being down raises TransientError, so the batch is retried and nothing is committed.
"""

from __future__ import annotations

import numpy as np
from PIL import UnidentifiedImageError

from services.clip.routing import ModelRouter
from services.common.kafka.processor import (
    Outgoing,
    ProcessorConfig,
    Received,
    Rejected,
    Result,
    TransactionalProcessor,
)
from services.common.messages import ModelRef, SegmentEmbedding, Topics, VideoSegment
from services.common.triton import ClipClient
from services.common.vectors import SegmentStore, mean_vector
from services.embedder.settings import EmbedderSettings
from services.media.images import jpeg_to_pixels, thumbnail


class Embedder:
    """Embeds with Triton, or in-process with the served collection's model while Triton still serves the one
    `reindex` switched away from (see `services.clip.routing`)."""

    def __init__(self, client: ClipClient, router: ModelRouter | None = None) -> None:
        self.client = client
        self.router = router

    def handle(self, batch: list[Received[VideoSegment]]) -> list[Result]:
        results: list[Result] = []
        images: list[np.ndarray] = []
        owners: list[tuple[Received[VideoSegment], slice]] = []
        for received in batch:
            try:
                pixels = [jpeg_to_pixels(k.jpeg) for k in received.value.keyframes]
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                results.append(Rejected(received.raw, "bad_keyframe", f"keyframe is not a decodable image: {exc}"))
                continue
            owners.append((received, slice(len(images), len(images) + len(pixels))))
            images.extend(pixels)
        if not images:
            return results
        embeddings, model = self._embed(images)
        for received, rows in owners:
            seg = received.value
            message = SegmentEmbedding(
                event_id=seg.event_id,
                video_id=seg.video_id,
                segment_index=seg.segment_index,
                segment_count=seg.segment_count,
                start_s=seg.start_s,
                end_s=seg.end_s,
                keyframe_times=[k.t for k in seg.keyframes],
                vector=mean_vector(embeddings[rows]),
                model=model,
                video=seg.video,
                thumbnail=thumbnail(seg.keyframes[len(seg.keyframes) // 2].jpeg),
            )
            results.append(Outgoing(Topics.EMBEDDINGS, message, seg.video_id, received))
        return results

    def _embed(self, images: list[np.ndarray]) -> tuple[np.ndarray, ModelRef]:
        if self.router is None:
            return self.client.embed_images(images)
        vectors, model, _ = self.router.embed(
            lambda: self.client.embed_images(images),
            lambda clip: np.concatenate([clip.embed_pixels(image[None]) for image in images]),
        )
        return vectors, model


def build(settings: EmbedderSettings) -> TransactionalProcessor[VideoSegment]:
    url = settings.common.triton_grpc_url if settings.triton_transport == "grpc" else settings.common.triton_http_url
    client = ClipClient(
        url,
        timeout_s=settings.triton_timeout_s,
        max_batch=settings.max_batch_images,
        max_in_flight=settings.max_in_flight,
        transport=settings.triton_transport,
        shared_memory=settings.shared_memory,
    )
    embedder = Embedder(client, ModelRouter(SegmentStore(settings.common), ttl_s=settings.served_model_ttl_s))
    config = ProcessorConfig(
        service="embedder",
        group_id=settings.group_id,
        input_topic=Topics.SEGMENTS,
        max_batch=settings.max_batch_messages,
        max_wait_s=settings.max_wait_s,
        handle_timeout_s=settings.triton_timeout_s * 4 + 60,
        **settings.common.processor_fields(),
    )
    return TransactionalProcessor.for_topics(settings.common, config, embedder.handle, client.ready)
