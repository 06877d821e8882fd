"""One contract per concept across the topics: the tenant, an upload's fields along the pipe, each topic's model."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from services.common.kafka.processor import ProcessorConfig, Received, Result, TransactionalProcessor
from services.common.messages import (
    TOPIC_MODELS,
    DeadLetter,
    Keyframe,
    SegmentEmbedding,
    SegmentIndexed,
    Topics,
    UploadStamped,
    VideoInfo,
    VideoProbed,
    VideoSegment,
    VideoStatus,
    VideoUploaded,
)
from services.common.settings import CommonSettings
from services.decoder.service import Decoder
from services.enricher.status import failed
from services.media.decode import DecodedVideo
from services.media.decode import Keyframe as DecodedKeyframe
from services.media.decode import Segment as DecodedSegment
from services.media.probe import Probe

KNOWN = "^[A-Za-z0-9_-]+$"
OR_UNKNOWN = "^[A-Za-z0-9_-]*$"


def _tenant_schema(model: type[BaseModel]) -> dict[str, Any] | None:
    schema = model.model_json_schema()
    return schema["properties"].get("tenant")


@pytest.mark.parametrize("topic", sorted(TOPIC_MODELS))
def test_every_tenant_field_has_one_of_the_two_tenant_contracts(topic: str) -> None:
    tenant = _tenant_schema(TOPIC_MODELS[topic])
    if tenant is None:
        return
    assert tenant["maxLength"] == 64 and tenant["type"] == "string"
    assert (tenant["pattern"], tenant.get("minLength")) in [(KNOWN, 1), (OR_UNKNOWN, None)]


def test_the_segment_carries_the_tenant_contract_in_its_video() -> None:
    video = VideoInfo.model_json_schema()["properties"]["tenant"]
    assert (video["pattern"], video["minLength"], video["maxLength"]) == (KNOWN, 1, 64)


@pytest.mark.parametrize("model", [VideoStatus, SegmentIndexed, VideoProbed])
def test_unknown_is_empty_and_only_where_older_records_lack_it(model: type[BaseModel]) -> None:
    assert model.model_fields["tenant"].default == ""
    with pytest.raises(ValidationError):
        VideoUploaded(video_id="v1", uri="file:///x.mp4", tenant="")
    with pytest.raises(ValidationError):
        VideoStatus(event_id="e", video_id="v1", stage="failed", tenant="a b")


UPLOADED_AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _upload() -> VideoUploaded:
    return VideoUploaded(
        video_id="v1",
        uri="file:///x.mp4",
        creator="ann",
        tenant="acme",
        title="a title",
        uploaded_at=UPLOADED_AT,
        tags=["a", "b"],
        metadata={"prompt": "a cat", "n": 3},
    )


def _probe() -> Probe:
    return Probe(
        container="mov,mp4",
        codec="h264",
        profile="High",
        pixel_format="yuv420p",
        width=640,
        height=360,
        rotation=90,
        sample_aspect_ratio="1:1",
        fps=25.0,
        duration_s=12.5,
        bitrate=800_000,
        has_audio=True,
        frame_count=312,
        interlaced=True,
    )


class _Raw:
    def topic(self) -> str:
        return Topics.UPLOADED


def _decoder_outputs() -> list[Result]:
    up = _upload()
    decoded = DecodedVideo(
        probe=_probe(),
        segments=[DecodedSegment(i, i * 4.0, i * 4.0 + 4, [DecodedKeyframe(i * 4.0 + 2, b"\xff\xd8")]) for i in (0, 1)],
    )
    received: Received[VideoUploaded] = Received(up, _Raw(), None)  # type: ignore[arg-type]
    return Decoder.outputs(received, decoded)


def test_the_decoder_carries_the_probe_and_the_upload_as_they_are() -> None:
    outs = _decoder_outputs()
    probed = outs[0].message  # type: ignore[union-attr]
    assert isinstance(probed, VideoProbed)
    assert {f.name: getattr(probed, f.name) for f in fields(Probe)} == asdict(_probe())
    assert (probed.tenant, probed.uploaded_at, probed.segment_count) == ("acme", UPLOADED_AT, 2)
    segments = [o.message for o in outs[1:]]  # type: ignore[union-attr]
    assert [s.segment_index for s in segments] == [0, 1]  # type: ignore[union-attr]
    video = segments[0].video  # type: ignore[union-attr]
    up = _upload()
    assert video == VideoInfo(
        uri=up.uri,
        creator=up.creator,
        tenant=up.tenant,
        title=up.title,
        uploaded_at=up.uploaded_at,
        tags=up.tags,
        metadata=up.metadata,
        width=640,
        height=360,
        duration_s=12.5,
    )


def _letter(topic: str, payload: bytes) -> DeadLetter:
    return DeadLetter.of("stage", "corrupt_video", "d", (topic, 0, 1), b"v1", payload)


def test_a_failed_upload_reads_its_tenant_and_time_wherever_its_topic_carries_them() -> None:
    up = _upload()
    segment = VideoSegment(
        event_id=up.event_id,
        video_id="v1",
        segment_index=0,
        segment_count=1,
        start_s=0,
        end_s=4,
        keyframes=[Keyframe(t=2, jpeg=b"\xff")],
        video=VideoInfo.of(up, 640, 360, 4.0),
    )
    for topic, message in [(Topics.UPLOADED, up), (Topics.SEGMENTS, segment)]:
        status = failed(_letter(topic, message.model_dump_json().encode()))
        assert status is not None and (status.tenant, status.uploaded_at) == ("acme", UPLOADED_AT), topic
    bare = failed(_letter(Topics.DELETED, b'{"event_id": "e", "video_id": "v1"}'))
    assert bare is not None and (bare.tenant, bare.uploaded_at) == ("", None)


def test_the_stamp_of_an_embedding_is_what_the_flat_messages_carry() -> None:
    info = VideoInfo.of(_upload(), 1, 1, 1.0)
    assert info.stamp() == {"tenant": "acme", "uploaded_at": UPLOADED_AT}
    assert set(info.stamp()) == set(UploadStamped.model_fields) - {"schema_version", "event_id", "video_id"}
    assert "video" in SegmentEmbedding.model_fields and "video" in VideoSegment.model_fields


@pytest.mark.parametrize(
    ("topic", "more"), [(Topics.UPLOADED, ()), (Topics.DELETED, (Topics.UPDATED,)), (Topics.INDEXED, ())]
)
def test_a_stage_reads_each_topic_with_the_model_topic_models_states(topic: str, more: tuple[str, ...]) -> None:
    def handle(_batch: list[Received[Any]]) -> list[Result]:
        return []

    config = ProcessorConfig(service="s", group_id="g", input_topic=topic, more_topics=more)
    processor = TransactionalProcessor.for_topics(CommonSettings(), config, handle)
    assert processor._model == {t: TOPIC_MODELS[t] for t in (topic, *more)}
