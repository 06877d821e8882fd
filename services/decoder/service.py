"""The decoder stage: one upload in, its probe and segments out, or a dead letter with the reason."""

from __future__ import annotations

from dataclasses import asdict

from services.common.kafka.processor import (
    Outgoing,
    ProcessorConfig,
    Received,
    Rejected,
    Result,
    TransactionalProcessor,
)
from services.common.messages import Keyframe, Topics, VideoInfo, VideoProbed, VideoSegment, VideoUploaded
from services.decoder.settings import DecoderSettings
from services.media.decode import DecodedVideo
from services.media.errors import DecodeError


class Decoder:
    """Decodes in a child process (`IsolatedDecoder`): no upload can hang, crash or exhaust the stage."""

    def __init__(self, settings: DecoderSettings) -> None:
        self.settings = settings
        self.isolated = settings.isolated_decoder()

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
        for seg in decoded.segments:
            message = VideoSegment(
                event_id=up.event_id,
                video_id=up.video_id,
                segment_index=seg.index,
                segment_count=count,
                start_s=seg.start_s,
                end_s=seg.end_s,
                keyframes=[Keyframe(t=k.t, jpeg=k.jpeg) for k in seg.keyframes],
                video=info,
            )
            out.append(Outgoing(Topics.SEGMENTS, message, up.video_id, received))
        return out


def build(settings: DecoderSettings) -> TransactionalProcessor[VideoUploaded]:
    decoder = Decoder(settings)
    config = ProcessorConfig(
        service="decoder",
        group_id=settings.group_id,
        input_topic=Topics.UPLOADED,
        max_batch=1,
        handle_timeout_s=decoder.isolated.deadline_s + 60,
        **settings.common.processor_fields(),
    )
    return TransactionalProcessor.for_topics(settings.common, config, decoder.handle)
