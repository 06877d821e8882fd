"""A segment's text row: its lines kept whole in any script, within the column's bytes."""

from __future__ import annotations

import json

from services.common.messages import ScreenText, SegmentText
from services.common.vectors.layout import LINES_BYTES
from services.common.vectors.rows import text_row


def _found(text: str, count: int) -> SegmentText:
    lines = [ScreenText(text=text, box=(0.1, 0.1, 0.9, 0.2), confidence=0.9, t=1.0) for _ in range(count)]
    return SegmentText(
        event_id="e",
        video_id="v",
        tenant="t",
        segment_index=0,
        segment_count=1,
        start_s=0,
        end_s=1,
        lines=lines,
        encoder="x",
    )


def test_non_latin_lines_are_stored_as_characters_not_escapes() -> None:
    row = text_row(_found("東京の夜市" * 10, 20), [0.0] * 4)
    assert len(json.loads(row["lines"])) == 20 and "東京" in row["lines"]
    assert len(row["lines"].encode()) <= LINES_BYTES


def test_lines_past_the_column_are_cut_whole() -> None:
    row = text_row(_found("東" * 256, 64), [0.0] * 4)
    kept = json.loads(row["lines"])
    assert 0 < len(kept) < 64 and all(line["text"] == "東" * 256 for line in kept)
    assert len(row["lines"].encode()) <= LINES_BYTES
