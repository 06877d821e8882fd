"""The decoder stage: one upload in, its probe and segments out, or a dead letter with the reason."""

from __future__ import annotations

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
from services.media.decode import DecodedVideo, decode_video
from services.media.errors import DecodeError
from services.media.sources import open_source


class Decoder:
    def __init__(self, settings: DecoderSettings) -> None:
        self.settings = settings
        self.options = settings.decode_options()
        self.sources = settings.source_policy()

    def handle(self, batch: list[Received[VideoUploaded]]) -> list[Result]:
        results: list[Result] = []
        for received in batch:
            try:
                decoded = self.decode(received.value)
            except DecodeError as exc:
                results.append(Rejected(received.raw, exc.reason, exc.detail))
                continue
            results.extend(self.outputs(received, decoded))
        return results

    def decode(self, upload: VideoUploaded) -> DecodedVideo:
        with open_source(upload.uri, self.sources) as source:
            return decode_video(source, self.options)

    @staticmethod
    def outputs(received: Received[VideoUploaded], decoded: DecodedVideo) -> list[Result]:
        up, probe = received.value, decoded.probe
        count = len(decoded.segments)
        info = VideoInfo(
            uri=up.uri,
            creator=up.creator,
            tenant=up.tenant,
            title=up.title,
            uploaded_at=up.uploaded_at,
            tags=up.tags,
            width=probe.width,
            height=probe.height,
            duration_s=probe.duration_s,
        )
        probed = VideoProbed(
            event_id=up.event_id,
            video_id=up.video_id,
            container=probe.container,
            codec=probe.codec,
            width=probe.width,
            height=probe.height,
            fps=probe.fps,
            duration_s=probe.duration_s,
            bitrate=probe.bitrate,
            has_audio=probe.has_audio,
            frame_count=probe.frame_count,
            segment_count=count,
            profile=probe.profile,
            pixel_format=probe.pixel_format,
            rotation=probe.rotation,
            sample_aspect_ratio=probe.sample_aspect_ratio,
            interlaced=probe.interlaced,
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
    config = ProcessorConfig(service="decoder", group_id=settings.group_id, input_topic=Topics.UPLOADED, max_batch=1)
    return TransactionalProcessor(settings.common, config, VideoUploaded, decoder.handle)
