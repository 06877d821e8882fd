"""The on-screen text stage: `videos.segments` -> words on each keyframe (PP-OCR) -> the text collection
(words, boxes, their sentence embedding) -> `videos.text`.

Its own consumer group beside the embedder's, so reading text never delays indexing, and the same transactional
processor: the rows are upserted (keyed by video and segment, so a replay rewrites them) before the transaction
that publishes `videos.text` and commits the offset. A keyframe that is not a picture is the message's
permanent failure; Milvus and the broker failing are transient (retried, then dead-lettered with history). The
dead letters go to `videos.text.deadletter`, never the pipeline's: an upload's outcome (indexed or failed) does
not depend on its words, and the video is searchable by what it shows all the same.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import Counter, Histogram

from services.common.errors import PermanentError
from services.common.kafka.processor import Outgoing, ProcessorConfig, Received, Result, TransactionalProcessor
from services.common.messages import ScreenText, SegmentText, Topics, VideoSegment
from services.common.vectors import SegmentStore
from services.media.errors import DecodeError
from services.media.images import jpeg_to_pixels
from services.ocr.settings import OcrSettings
from services.text import sentences
from services.text.ocr import TextLine, TextReader

MAX_LINES = 64  # per segment (a message's bound)
KEYFRAMES = Counter("clipstream_ocr_keyframes_total", "keyframes read for on-screen text")
LINES = Counter("clipstream_ocr_lines_total", "distinct lines of text read, per segment")
READ_SECONDS = Histogram(
    "clipstream_ocr_read_seconds",
    "seconds to read one keyframe (detection and recognition)",
    buckets=(0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4),
)


class TextStage:
    def __init__(self, store: SegmentStore, settings: OcrSettings) -> None:
        self.store = store
        self.reader = TextReader(settings.limits(), settings.threads, settings.gpu)
        self.encoder = sentences.SentenceEncoder(sentences.prepare(Path(settings.encoder_dir)), settings.threads)

    def handle(self, batch: list[Received[VideoSegment]]) -> list[Result]:
        found = [self.read(received.value) for received in batch]
        texts = [" ".join(line.text for line in f.lines) for f in found]
        with_text = [i for i, t in enumerate(texts) if t]
        vectors = self.encoder.embed([texts[i] for i in with_text])
        embedded = dict(zip(with_text, vectors.tolist(), strict=True))
        self.store.write_text(sentences.VERSION, sentences.DIM, [(f, embedded.get(i)) for i, f in enumerate(found)])
        return [Outgoing(Topics.TEXT, f, f.video_id, received) for f, received in zip(found, batch, strict=True)]

    def read(self, segment: VideoSegment) -> SegmentText:
        """The segment's lines: each distinct text once (the most confident reading), in reading order."""
        best: dict[str, tuple[TextLine, float]] = {}
        for keyframe in segment.keyframes:
            try:
                pixels = jpeg_to_pixels(keyframe.jpeg)
            except (DecodeError, OSError, ValueError) as exc:
                raise PermanentError(
                    f"keyframe at {keyframe.t}s is not a picture: {exc}", reason="bad_keyframe"
                ) from exc
            with READ_SECONDS.time():
                read = self.reader.read(pixels)
            KEYFRAMES.inc()
            for line in read:
                seen = best.get(line.text)
                if seen is None or line.confidence > seen[0].confidence:
                    best[line.text] = (line, keyframe.t)
        ordered = sorted(best.values(), key=lambda lt: (lt[1], lt[0].box[1], lt[0].box[0]))[:MAX_LINES]
        LINES.inc(len(ordered))
        return SegmentText(
            event_id=segment.event_id,
            video_id=segment.video_id,
            tenant=segment.video.tenant,
            uploaded_at=segment.video.uploaded_at,
            segment_index=segment.segment_index,
            segment_count=segment.segment_count,
            start_s=segment.start_s,
            end_s=segment.end_s,
            lines=[ScreenText(text=line.text, box=line.box, confidence=line.confidence, t=t) for line, t in ordered],
            encoder=sentences.VERSION,
        )


def build(settings: OcrSettings) -> TransactionalProcessor[VideoSegment]:
    store = SegmentStore(settings.common)
    stage = TextStage(store, settings)
    config = ProcessorConfig(
        service="ocr",
        group_id=settings.group_id,
        input_topic=Topics.SEGMENTS,
        max_batch=settings.max_batch_messages,
        max_wait_s=settings.max_wait_s,
        handle_timeout_s=300.0,
        dead_letter_topic=Topics.TEXT_DEAD_LETTER,
        **settings.common.processor_fields(),
    )
    return TransactionalProcessor.for_topics(settings.common, config, stage.handle, store.ready)
