import pytest
from pydantic import ValidationError

from services.common.messages import Keyframe, VideoInfo, VideoSegment, VideoUploaded, utcnow


def test_segment_roundtrips_jpeg_bytes_through_json() -> None:
    seg = VideoSegment(
        event_id="e1",
        video_id="v1",
        segment_index=0,
        segment_count=1,
        start_s=0,
        end_s=4,
        keyframes=[Keyframe(t=2.0, jpeg=b"\xff\xd8\x00binary\xff")],
        video=VideoInfo(uri="file:///x.mp4", uploaded_at=utcnow()),
    )
    again = VideoSegment.model_validate_json(seg.model_dump_json())
    assert again == seg
    assert again.keyframes[0].jpeg == b"\xff\xd8\x00binary\xff"


@pytest.mark.parametrize("video_id", ["", "a b", "x" * 129, "v/../../etc", "v'; drop"])
def test_hostile_video_ids_are_rejected(video_id: str) -> None:
    with pytest.raises(ValidationError):
        VideoUploaded(video_id=video_id, uri="file:///x.mp4")


def test_tenant_is_constrained() -> None:
    with pytest.raises(ValidationError):
        VideoUploaded(video_id="v1", uri="file:///x.mp4", tenant='a" or 1==1')


def test_unknown_fields_from_newer_producers_are_ignored() -> None:
    raw = VideoUploaded(video_id="v1", uri="file:///x.mp4").model_dump()
    raw["added_in_v2"] = 1
    assert VideoUploaded.model_validate(raw).video_id == "v1"
