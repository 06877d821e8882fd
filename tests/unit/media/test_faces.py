"""Faces on keyframes with the Haar cascade from the OpenCV wheel: found where they are, not found where
there are none, and bounded on degenerate and huge pictures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from services.media.faces import CROP_SIDE, FaceLimits, crop, detect
from services.media.variants import frames
from tests.clips import SHARED_VIDEOS

ASTRONAUT_FACE = (177 / 512, 66 / 512, 272 / 512, 161 / 512)  # where the cascade finds it at full size


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("side", [512, 256, 3000])
def test_the_astronauts_face_is_found_where_it_is_at_any_size(side: int) -> None:
    picture = np.asarray(Image.fromarray(data.astronaut()).resize((side, side)))
    faces = detect(picture)
    assert len(faces) == 1 and _overlap(faces[0].box, ASTRONAUT_FACE) > 0.6, faces


def test_a_face_pasted_on_real_footage_is_found_and_the_footage_alone_has_none() -> None:
    background = next(frames(SHARED_VIDEOS / "opencv-doc__tree.avi", start_s=1.0))
    picture = Image.fromarray(background).resize((455, 256))
    assert detect(np.asarray(picture)) == []
    face = Image.fromarray(data.astronaut()).crop((150, 40, 300, 190)).resize((90, 90))
    picture.paste(face, (300, 60))
    found = detect(np.asarray(picture))
    assert len(found) == 1
    x0, y0, x1, y1 = found[0].box
    assert 300 / 455 - 0.05 < x0 < x1 < 390 / 455 + 0.05 and 60 / 256 - 0.05 < y0 < y1 < 150 / 256 + 0.05


@pytest.mark.parametrize(
    "pixels", [np.zeros((1, 4000, 3), np.uint8), np.zeros((4000, 10, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)]
)
def test_degenerate_pictures_hold_no_face(pixels: np.ndarray) -> None:
    assert detect(pixels) == []


def test_at_most_max_faces_the_largest_first() -> None:
    tile = np.asarray(Image.fromarray(data.astronaut()).crop((140, 30, 310, 200)).resize((128, 128)))
    sheet = np.concatenate([np.concatenate([tile] * 4, axis=1)] * 3, axis=0)  # 12 faces
    assert len(detect(sheet, FaceLimits(max_faces=3))) == 3
    found = detect(sheet)
    assert len(found) > 3
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in found]
    assert areas == sorted(areas, reverse=True)


def test_a_crop_is_square_at_the_model_size() -> None:
    picture = data.astronaut()
    face = detect(picture)[0]
    assert crop(picture, face).shape == (CROP_SIDE, CROP_SIDE, 3)
