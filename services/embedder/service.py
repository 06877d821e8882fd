"""The embedder stage: keyframes of many segments in one Triton round, one vector per segment out.

A segment's vector is the normalised mean of its keyframes' embeddings. Malformed JPEGs dead-letter their
segment alone; Triton being down raises TransientError, so the batch is retried and nothing is committed.
A reindex's segments (`videos.backfill.segments`, own group) are embedded with their target model, only
while this replica's fresh segments are quiet.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, TypeVar

import numpy as np
from PIL import UnidentifiedImageError

from services.clip.routing import ModelRouter, in_process
from services.common.errors import Misconfigured
from services.common.kafka.processor import (
    Outgoing,
    ProcessorConfig,
    Received,
    Rejected,
    Result,
    TransactionalProcessor,
    backfill_config,
)
from services.common.messages import (
    BackfillSegment,
    BackfillTarget,
    FaceVector,
    ModelRef,
    SegmentEmbedding,
    Topics,
    VideoSegment,
)
from services.common.triton import ClipClient
from services.common.vectors import SegmentStore, mean_vector
from services.embedder.settings import EmbedderSettings
from services.media.faces import Face, FaceModel, crop, face_model
from services.media.images import jpeg_to_pixels, thumbnail

TRITON_RECHECK_S = 60.0  # a backfill asks Triton which model it serves again after this long (it may be rolled)


class Embedder:
    """Embeds with Triton, or in-process with the served collection's model while Triton still serves the one
    `reindex` switched away from (see `services.clip.routing`)."""

    def __init__(self, client: ClipClient, router: ModelRouter | None = None, faces: FaceModel | None = None) -> None:
        self.client = client
        self.router = router
        self.faces = faces  # a face-embedding model for face crops; None: the keyframes' model embeds them too
        self._triton_seen: tuple[str, float] | None = None  # the model Triton answered with, until when trusted

    def handle(self, batch: list[Received[VideoSegment]]) -> list[Result]:
        results, images, crops, owners = _pixels(batch)
        if images:
            if self.faces is None:  # keyframes and face crops in one round
                embeddings, model = self._embed(images + crops)
                seen, faces = embeddings[: len(images)], embeddings[len(images) :]
            else:
                seen, model = self._embed(images)
                faces = self.faces.embed(crops)
            results += _embedded(owners, seen, faces, model, self._face_ref(), Topics.EMBEDDINGS)
        return results

    def _face_ref(self) -> ModelRef | None:
        return self.faces.ref if self.faces is not None else None

    def backfill(self, batch: list[Received[BackfillSegment]]) -> list[Result]:
        """Segments of a reindex, embedded with their target model (Triton's when it serves it)."""
        by_target: dict[BackfillTarget, list[Received[BackfillSegment]]] = defaultdict(list)
        for received in batch:
            by_target[received.value.target].append(received)
        results: list[Result] = []
        for target, group in by_target.items():
            rejected, images, crops, owners = _pixels(group)
            results += rejected
            if images:
                if self.faces is None:
                    embeddings = self._embed_with(target, images + crops)
                    seen, faces = embeddings[: len(images)], embeddings[len(images) :]
                else:
                    seen, faces = self._embed_with(target, images), self.faces.embed(crops)
                results += _embedded(owners, seen, faces, target.model, self._face_ref(), Topics.BACKFILL_EMBEDDINGS)
        return results

    def _embed_with(self, target: BackfillTarget, images: list[np.ndarray]) -> np.ndarray:
        """Triton while it serves the target (asked again every `TRITON_RECHECK_S`), else in-process."""
        now = time.monotonic()
        if self._triton_seen is None or self._triton_seen[0] == target.model.version or now > self._triton_seen[1]:
            vectors, model = self.client.embed_images(images)
            self._triton_seen = (model.version, now + TRITON_RECHECK_S)
            if model.version == target.model.version:
                return vectors
        if not target.spec:
            raise Misconfigured(
                f"Triton does not serve {target.model.name}:{target.model.version} and the backfill names no "
                "loadable spec for it",
                reason="model_mismatch",
            )
        clip = in_process(target.spec)
        if clip.ref.version != target.model.version:
            raise Misconfigured(
                f"{target.spec} loads {clip.ref.version}, the backfill needs {target.model.version}",
                reason="model_mismatch",
            )
        return np.concatenate([clip.embed_pixels(image[None]) for image in images])

    def _embed(self, images: list[np.ndarray]) -> tuple[np.ndarray, ModelRef]:
        if self.router is None:
            return self.client.embed_images(images)
        vectors, model, _ = self.router.embed(
            lambda: self.client.embed_images(images),
            lambda clip: np.concatenate([clip.embed_pixels(image[None]) for image in images]),
        )
        return vectors, model


S = TypeVar("S", bound=VideoSegment)


Owner = tuple[Received[S], slice, slice]  # a segment, its keyframes' rows, its face crops' rows


def _pixels(batch: list[Received[S]]) -> tuple[list[Result], list[np.ndarray], list[np.ndarray], list[Owner[S]]]:
    """Each segment's keyframes decoded, and its faces cropped from them (a segment with a bad keyframe is
    rejected alone, as is one naming a face on no keyframe of its own), and which rows of each are whose."""
    results: list[Result] = []
    images: list[np.ndarray] = []
    all_crops: list[np.ndarray] = []
    owners: list[Owner[S]] = []
    for received in batch:
        seg = received.value
        try:
            pixels = [jpeg_to_pixels(k.jpeg) for k in seg.keyframes]
            at = {k.t: p for k, p in zip(seg.keyframes, pixels, strict=True)}
            crops = [crop(at[f.t], Face(f.box, f.score)) for f in seg.faces]
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            results.append(Rejected(received.raw, "bad_keyframe", f"keyframe is not a decodable image: {exc}"))
            continue
        except KeyError as exc:
            results.append(Rejected(received.raw, "bad_face", f"a face names no keyframe of the segment: {exc}"))
            continue
        rows = slice(len(images), len(images) + len(pixels))
        owners.append((received, rows, slice(len(all_crops), len(all_crops) + len(crops))))
        images.extend(pixels)
        all_crops.extend(crops)
    return results, images, all_crops, owners


def _embedded(
    owners: list[Owner[S]],
    embeddings: np.ndarray,
    faces: np.ndarray,
    model: ModelRef,
    face_model: ModelRef | None,
    topic: str,
) -> list[Result]:
    """One message per segment: its keyframes' mean vector, its faces' vectors (by `face_model` when one is
    configured, else by the segment's `model`)."""
    results: list[Result] = []
    for received, rows, face_rows in owners:
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
            fingerprints=seg.fingerprints,
            faces=[
                FaceVector(box=f.box, score=f.score, t=f.t, vector=_unit(v))
                for f, v in zip(seg.faces, faces[face_rows], strict=True)
            ],
            face_model=face_model,
        )
        results.append(Outgoing(topic, message, seg.video_id, received))
    return results


def _unit(vector: np.ndarray) -> list[float]:
    return (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(float).tolist()


def build(settings: EmbedderSettings) -> list[TransactionalProcessor[Any]]:
    url = settings.common.triton_grpc_url if settings.triton_transport == "grpc" else settings.common.triton_http_url
    client = ClipClient(
        url,
        timeout_s=settings.triton_timeout_s,
        max_batch=settings.max_batch_images,
        max_in_flight=settings.max_in_flight,
        transport=settings.triton_transport,
        shared_memory=settings.shared_memory,
    )
    router = ModelRouter(SegmentStore(settings.common), ttl_s=settings.served_model_ttl_s)
    embedder = Embedder(client, router, face_model(settings.common.face_model))
    config = ProcessorConfig(
        service="embedder",
        group_id=settings.group_id,
        input_topic=Topics.SEGMENTS,
        max_batch=settings.max_batch_messages,
        max_wait_s=settings.max_wait_s,
        handle_timeout_s=settings.triton_timeout_s * 4 + 60,
        **settings.common.processor_fields(),
    )
    fresh = TransactionalProcessor.for_topics(settings.common, config, embedder.handle, client.ready)
    backfill = backfill_config(fresh, Topics.BACKFILL_SEGMENTS, settings)
    return [fresh, TransactionalProcessor.for_topics(settings.common, backfill, embedder.backfill, client.ready)]
