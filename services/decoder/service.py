"""The decoder stage: one upload in, its probe and segments out, or a dead letter with the reason.

The same process decodes backfill events (`clipstream reindex`) in its own group, on their own topics, and
only while its fresh uploads' partitions are quiet: a reindex never delays an upload on this replica."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, TypeVar

from services.common.fingerprints import segment_text
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
    MAX_FACES,
    BackfillSegment,
    FaceBox,
    Keyframe,
    Topics,
    VideoBackfill,
    VideoInfo,
    VideoProbed,
    VideoSegment,
    VideoUploaded,
)
from services.decoder.settings import DecoderSettings
from services.media.decode import DecodedVideo, Segment
from services.media.errors import DecodeError
from services.media.faces import detect
from services.media.images import jpeg_to_pixels


class Decoder:
    """Decodes in a child process (`IsolatedDecoder`): no upload can hang, crash or exhaust the stage. The
    backfill has a child of its own: an upload never waits behind a backfill's decode, and a decode killed at
    its deadline never takes the other consumer's with it."""

    def __init__(self, settings: DecoderSettings) -> None:
        self.settings = settings
        self.isolated = settings.isolated_decoder()
        self.backfill_isolated = settings.isolated_decoder()

    def handle(self, batch: list[Received[VideoUploaded]]) -> list[Result]:
        results: list[Result] = []
        for received in batch:
            try:
                decoded = self.isolated.decode(received.value.uri)
            except DecodeError as exc:
                results.append(Rejected(received.raw, exc.reason, exc.detail))
                continue
            results.extend(self.outputs(received, decoded))
        return results

    @staticmethod
    def outputs(received: Received[VideoUploaded], decoded: DecodedVideo) -> list[Result]:
        up, probe = received.value, decoded.probe
        count = len(decoded.segments)
        info = VideoInfo.of(up, probe.width, probe.height, probe.duration_s)
        probed = VideoProbed(
            **asdict(probe), **info.stamp(), event_id=up.event_id, video_id=up.video_id, segment_count=count
        )
        out: list[Result] = [Outgoing(Topics.PROBED, probed, up.video_id, received)]
        segments = _segments(VideoSegment, decoded, event_id=up.event_id, video_id=up.video_id, video=info)
        return out + [Outgoing(Topics.SEGMENTS, message, up.video_id, received) for message in segments]

    def backfill(self, batch: list[Received[VideoBackfill]]) -> list[Result]:
        """A catalogued video again, its segments for the backfill's target model (no probe: its status stands)."""
        results: list[Result] = []
        for received in batch:
            back = received.value
            try:
                decoded = self.backfill_isolated.decode(back.video.uri)
            except DecodeError as exc:
                results.append(Rejected(received.raw, exc.reason, exc.detail))
                continue
            probe = decoded.probe
            info = back.video.model_copy(
                update={"width": probe.width, "height": probe.height, "duration_s": probe.duration_s}
            )
            segments = _segments(
                BackfillSegment, decoded, event_id=back.event_id, video_id=back.video_id, video=info, target=back.target
            )
            results += [Outgoing(Topics.BACKFILL_SEGMENTS, message, back.video_id, received) for message in segments]
        return results


S = TypeVar("S", bound=VideoSegment)


def _segments(kind: type[S], decoded: DecodedVideo, **fields: Any) -> list[S]:
    """The decoded video's segments as messages of `kind`, each with `fields` (ids, video info, ...)."""
    count = len(decoded.segments)
    return [
        kind(
            segment_index=seg.index,
            segment_count=count,
            start_s=seg.start_s,
            end_s=seg.end_s,
            keyframes=[Keyframe(t=k.t, jpeg=k.jpeg) for k in seg.keyframes],
            fingerprints=segment_text(seg.fingerprints),
            faces=_faces(seg),
            **fields,
        )
        for seg in decoded.segments
    ]


def _faces(seg: Segment) -> list[FaceBox]:
    """The faces on the segment's keyframes (the largest first on each), at most MAX_FACES. A keyframe that
    does not decode has none here (the embedder dead-letters its segment with the reason)."""
    found = []
    for k in seg.keyframes:
        try:
            pixels = jpeg_to_pixels(k.jpeg)
        except (OSError, ValueError):
            continue
        found += [FaceBox(box=face.box, score=face.score, t=k.t) for face in detect(pixels)]
    return found[:MAX_FACES]


def build(settings: DecoderSettings) -> list[TransactionalProcessor[Any]]:
    """Fresh uploads, and the backfill in its own group, held while the uploads' partitions have work."""
    decoder = Decoder(settings)
    config = ProcessorConfig(
        service="decoder",
        group_id=settings.group_id,
        input_topic=Topics.UPLOADED,
        max_batch=1,
        handle_timeout_s=decoder.isolated.deadline_s + 60,
        **settings.common.processor_fields(),
    )
    fresh = TransactionalProcessor.for_topics(settings.common, config, decoder.handle)
    backfill = backfill_config(fresh, Topics.BACKFILL, settings)
    return [fresh, TransactionalProcessor.for_topics(settings.common, backfill, decoder.backfill)]
