"""The QC stage: for every `videos.indexed` whose video carries a prompt and/or references in its free
metadata, run the checks (`services/quality/checks.py`) and publish the verdict on `videos.qc` in the
transaction that commits the offset. Videos with nothing to check publish nothing (counted).

Failures are classified like everywhere: a reference that is not allowed, too large or not an image, too
many references or an over-long prompt are permanent (dead-lettered with the reason); Triton, Milvus or a
reference's server failing are transient (retried, then dead-lettered with their history)."""

from __future__ import annotations

from prometheus_client import Counter

from services.clip.thresholds import ThresholdBook
from services.common.errors import PermanentError
from services.common.kafka.processor import Outgoing, ProcessorConfig, Received, Result, TransactionalProcessor
from services.common.messages import Topics, VideoIndexed, VideoQc
from services.common.triton import ClipClient
from services.common.vectors import SegmentStore
from services.media.images import ImageLimits
from services.qc.settings import QcSettings
from services.quality.checks import run_checks
from services.quality.inspect import (
    CollectionEmbedder,
    character_inputs,
    check_prompt,
    check_reference_count,
    load_subject,
    read_reference,
)

CHECKED = Counter("clipstream_qc_videos_total", "indexed videos by QC outcome", ["verdict"])
FLAGS = Counter("clipstream_qc_flags_total", "QC flags raised", ["check"])


class QualityChecker:
    def __init__(self, store: SegmentStore, clip: ClipClient, settings: QcSettings) -> None:
        self.store = store
        self.clip = clip
        self.settings = settings
        self.thresholds = ThresholdBook(settings.common.thresholds_path)
        self.sources = settings.media.source_policy()
        self.limits = ImageLimits()

    def handle(self, batch: list[Received[VideoIndexed]]) -> list[Result]:
        results: list[Result] = []
        for received in batch:
            found = self.check(received.value)
            if found is not None:
                results.append(Outgoing(Topics.QC, found, found.video_id, received, unique=received.value.event_id))
        return results

    def check(self, event: VideoIndexed) -> VideoQc | None:
        """The verdict on one indexed upload; None when there is nothing to check or its rows are gone."""
        quality = self.settings.quality
        if not self.store.exists(event.collection):
            raise PermanentError(f"no collection {event.collection}", reason="unknown_collection")
        subject = load_subject(self.store, event.collection, event.video_id, event.tenant, quality.max_segments)
        if subject is None or (subject.prompt is None and not subject.references):
            CHECKED.labels("nothing_to_check").inc()
            return None
        check_reference_count(len(subject.references), quality.max_references)
        model, spec = self.store.model_of(event.collection)
        embedder = CollectionEmbedder(self.store, self.clip, event.collection)
        prompt = None
        if subject.prompt is not None:
            prompt = embedder.texts([check_prompt(subject.prompt, quality.max_prompt_chars)])
        references = reference_faces = faces = None
        if subject.references:
            pictures = [
                read_reference(uri, self.sources, quality.max_reference_bytes, self.limits)
                for uri in subject.references
            ]
            references = embedder.images(pictures)
            faces, reference_faces = character_inputs(
                pictures,
                embedder.images,
                self.store,
                event.video_id,
                event.tenant,
                model,
                self.settings.common.face_model,
                subject.segments,
            )
        thresholds = self.thresholds.get(model, spec, self.settings.common.resolved_clip_model())
        config = quality.config(thresholds, self.settings.media.max_segment_s, subject.cuts_allowed)
        result = run_checks(subject.segments, config, prompt, references, faces, reference_faces)
        CHECKED.labels(result.verdict).inc()
        for flag in result.flags:
            FLAGS.labels(flag.check).inc()
        return VideoQc(
            event_id=event.event_id,
            video_id=event.video_id,
            tenant=event.tenant,
            collection=event.collection,
            model_version=event.model_version,
            verdict=result.verdict,
            checks=result.checks,
            flags=result.flags,
            segments=result.segments,
        )


def build(settings: QcSettings) -> TransactionalProcessor[VideoIndexed]:
    store = SegmentStore(settings.common)
    clip = ClipClient(settings.common.triton_grpc_url)
    checker = QualityChecker(store, clip, settings)
    config = ProcessorConfig(
        service="qc",
        group_id=settings.group_id,
        input_topic=Topics.INDEXED,
        max_batch=settings.max_batch_messages,
        max_wait_s=settings.max_wait_s,
        handle_timeout_s=300.0,
        **settings.common.processor_fields(),
    )

    def ready() -> bool:
        return store.ready() and clip.ready()

    return TransactionalProcessor.for_topics(settings.common, config, checker.handle, ready)
