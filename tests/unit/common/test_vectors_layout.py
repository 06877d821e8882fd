import pytest

from services.common.errors import PermanentError
from services.common.messages import ModelRef, SegmentEmbedding, VideoInfo, utcnow
from services.common.vectors import (
    mean_vector,
    segment_pk,
    segment_row,
    segments_collection,
    video_pk,
    videos_collection,
)
from services.common.vectors.rows import check_row, completed_uploads


def _embedding(segment_index: int, version: str = "abc") -> SegmentEmbedding:
    return SegmentEmbedding(
        event_id="e",
        video_id="v1",
        segment_index=segment_index,
        segment_count=3,
        start_s=0,
        end_s=4,
        keyframe_times=[1.0, 2.0, 3.0],
        vector=[0.0, 1.0],
        model=ModelRef(name="m", version=version, dim=2),
        video=VideoInfo(uri="file:///a.mp4", uploaded_at=utcnow(), creator="c"),
    )


def test_primary_key_is_a_function_of_video_segment_and_model() -> None:
    assert segment_row(_embedding(1))["pk"] == segment_row(_embedding(1))["pk"]
    assert segment_row(_embedding(1))["pk"] != segment_row(_embedding(2))["pk"]
    assert segment_row(_embedding(1, "v2"))["pk"] != segment_row(_embedding(1, "abc"))["pk"]
    assert segment_pk("v1", 1, "abc") == segment_row(_embedding(1))["pk"]


def test_row_uses_the_middle_keyframe() -> None:
    assert segment_row(_embedding(0))["keyframe_s"] == 2.0


def test_collection_names_are_milvus_safe_and_model_specific() -> None:
    a = segments_collection(ModelRef(name="vit-b/32", version="1.2", dim=512))
    assert a.replace("_", "").isalnum()
    assert a != segments_collection(ModelRef(name="vit-b/32", version="1.3", dim=512))


def test_tags_fill_indexed_slots_and_thumbnail_is_stored_as_base64() -> None:
    e = _embedding(0).model_copy(
        update={"video": VideoInfo(uri="file:///a.mp4", uploaded_at=utcnow(), tags=["a", "b"]), "thumbnail": b"\xff"}
    )
    row = segment_row(e)
    assert [row[f"tag{i}"] for i in range(8)] == ["a", "b", "", "", "", "", "", ""]
    assert row["thumb"] == "/w=="


def test_video_vector_is_the_normalised_mean() -> None:
    assert mean_vector([[1.0, 0.0], [0.0, 1.0]]) == pytest.approx([2**-0.5, 2**-0.5])
    assert video_pk("v1", "abc") != video_pk("v1", "abd")
    assert videos_collection(ModelRef(name="m", version="1", dim=2)) != segments_collection(
        ModelRef(name="m", version="1", dim=2)
    )


def test_an_upload_completes_when_its_segments_are_durable_in_any_order_and_batches() -> None:
    first = [_embedding(2), _embedding(0)]
    assert completed_uploads(first, {"v1": [segment_row(e) for e in first]}) == []
    last = [_embedding(1)]
    stored = {"v1": [segment_row(e) for e in (*first, *last)]}
    assert [e.segment_index for e in completed_uploads(last, stored)] == [1]


def test_rows_of_another_upload_of_the_same_video_do_not_complete_this_one() -> None:
    older = [segment_row(_embedding(i).model_copy(update={"event_id": "old"})) for i in (0, 1)]
    assert completed_uploads([_embedding(2)], {"v1": older}) == []


def test_rows_a_server_would_refuse_are_refused_first_in_utf8_bytes() -> None:
    e = _embedding(0).model_copy(update={"event_id": "é" * 32 + "a"})  # 33 characters, 65 bytes: one over
    with pytest.raises(PermanentError) as err:
        check_row(segment_row(e))
    assert err.value.reason == "field_too_long"
    check_row(segment_row(e.model_copy(update={"event_id": "é" * 32})))  # 64 bytes: the column's capacity
    title = "漢" * 400  # 400 characters, 1,200 bytes: cut on a character boundary to the column's 1,024
    row = segment_row(
        _embedding(0).model_copy(update={"video": VideoInfo(uri="file:///a", uploaded_at=utcnow(), title=title)})
    )
    check_row(row)
    assert len(row["title"].encode()) <= 1024 and row["title"] == "漢" * 341
