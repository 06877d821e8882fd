"""Byte limits are UTF-8 bytes, at the exact boundary: a Milvus server sizes VARCHAR columns in bytes, so a
contract or row check that counted characters would admit a CJK title three times its column and the
indexer would meet the refusal only at the server (Milvus Lite counts characters and would never show it).

Each value sits exactly on its limit, or one byte past it, and ends in a multi-byte character, so counting
characters (or cutting inside a character) fails here; the limits are the columns' own capacities."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from services.common.errors import PermanentError
from services.common.messages import (
    MAX_METADATA_BYTES,
    MAX_METADATA_KEYS,
    ModelRef,
    SegmentEmbedding,
    VideoDeleted,
    VideoInfo,
    VideoUpdated,
    VideoUploaded,
    utcnow,
)
from services.common.vectors.layout import MAX_LENGTHS
from services.common.vectors.rows import check_row, segment_row


def utf8(n_bytes: int) -> str:
    """Exactly `n_bytes` of UTF-8 in far fewer characters, ending in a two-byte one."""
    body = n_bytes - 2
    return "漢" * (body // 3) + "a" * (body % 3) + "é"


def test_the_test_strings_are_what_they_claim() -> None:
    for n in (62, 63, 64, 65, 1024, 4097):
        assert len(utf8(n).encode()) == n and len(utf8(n)) < n * 0.4 + 3


# (model, field, the column the field is stored in, how one value is given)
FIELDS: list[tuple[type[BaseModel], str, str, bool]] = [
    (VideoUploaded, "event_id", "event_id", False),
    (VideoUploaded, "uri", "uri", False),
    (VideoUploaded, "creator", "creator", False),
    (VideoUploaded, "title", "title", False),
    (VideoUploaded, "tags", "tag0", True),
    (VideoUpdated, "title", "title", False),
    (VideoUpdated, "creator", "creator", False),
    (VideoUpdated, "tags", "tag0", True),
    (VideoDeleted, "event_id", "event_id", False),
]
REQUIRED: dict[type[BaseModel], dict[str, Any]] = {
    VideoUploaded: {"video_id": "v1", "uri": "file:///a.mp4"},
    VideoUpdated: {"video_id": "v1", "tenant": "t"},
    VideoDeleted: {"video_id": "v1", "tenant": "t"},
}


@pytest.mark.parametrize(("model", "name", "column", "listed"), FIELDS, ids=lambda v: getattr(v, "__name__", v))
def test_message_fields_take_their_columns_bytes_and_not_one_more(
    model: type[BaseModel], name: str, column: str, listed: bool
) -> None:
    limit = MAX_LENGTHS[column]
    for n_bytes, accepted in ((limit, True), (limit + 1, False)):
        value = utf8(n_bytes)
        given = {**REQUIRED[model], name: [value] if listed else value}
        if accepted:
            assert getattr(model(**given), name) == given[name]
            continue
        with pytest.raises(ValidationError) as err:
            model(**given)
        assert f"{n_bytes} UTF-8 bytes" in str(err.value), f"{name} refused for the wrong reason: {err.value}"


def _metadata(n_bytes: int) -> dict[str, str]:
    """Metadata whose JSON is exactly `n_bytes` of UTF-8: a few multi-byte values, padded in the last one."""
    keys = [f"k{i}" for i in range(MAX_METADATA_KEYS // 2)]
    values = dict.fromkeys(keys, "漢" * 150)  # 450 bytes each, within a value's 512 characters
    spare = n_bytes - len(json.dumps({**values, keys[-1]: ""}, ensure_ascii=False).encode())
    values[keys[-1]] = utf8(spare)
    assert len(json.dumps(values, ensure_ascii=False).encode()) == n_bytes
    return values


@pytest.mark.parametrize("model", [VideoUploaded, VideoUpdated])
def test_metadata_is_measured_in_utf8_bytes_of_its_json(model: type[BaseModel]) -> None:
    at = model(**REQUIRED[model], metadata=_metadata(MAX_METADATA_BYTES))
    assert at.metadata == _metadata(MAX_METADATA_BYTES)  # type: ignore[attr-defined]
    with pytest.raises(ValidationError) as err:
        model(**REQUIRED[model], metadata=_metadata(MAX_METADATA_BYTES + 1))
    assert f"{MAX_METADATA_BYTES + 1} bytes of JSON" in str(err.value)


def _row(**video: Any) -> dict[str, Any]:
    return segment_row(
        SegmentEmbedding(
            event_id="e",
            video_id="v1",
            segment_index=0,
            segment_count=1,
            start_s=0,
            end_s=4,
            keyframe_times=[1.0],
            vector=[0.0, 1.0],
            model=ModelRef(name="m", version="1", dim=2),
            video=VideoInfo(uploaded_at=utcnow(), **{"uri": "file:///a.mp4", **video}),
        )
    )


@pytest.mark.parametrize("column", ["creator", "uri", "event_id", "tag0", "tag7"])
def test_the_row_check_refuses_one_byte_over_a_column(column: str) -> None:
    """The last guard before the server: a row from a message the contracts did not bound (an older producer,
    a replayed record) is refused as permanent, by its bytes, naming the column."""
    limit = MAX_LENGTHS[column]
    check_row({**_row(), column: utf8(limit)})
    with pytest.raises(PermanentError) as err:
        check_row({**_row(), column: utf8(limit + 1)})
    assert err.value.reason == "field_too_long"
    assert err.value.detail.startswith(f"{column} is {limit + 1} UTF-8 bytes")


def test_a_title_is_cut_to_its_column_on_a_character_boundary() -> None:
    limit = MAX_LENGTHS["title"]
    exact = utf8(limit)
    assert _row(title=exact)["title"] == exact
    over = _row(title=exact + "é")["title"]  # one character more than fits: dropped whole, never split
    assert over == exact
    check_row(_row(title="é" * limit))
    assert _row(title="é" * limit)["title"] == "é" * (limit // 2)
