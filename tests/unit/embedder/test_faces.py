"""The embedder's rows: each segment's keyframes, then its faces cropped from the keyframe they were found on;
a face naming no keyframe of its segment rejects that segment alone."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from PIL import Image
from skimage import data

from services.common.kafka.processor import Received, Rejected
from services.common.messages import FaceBox, Keyframe, ModelRef, SegmentEmbedding, VideoInfo, VideoSegment
from services.embedder.service import _embedded, _pixels
from services.media.faces import CROP_SIDE, detect


def _jpeg(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


class _Raw:
    def topic(self) -> str:
        return "videos.segments"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0

    def value(self) -> bytes:
        return b"{}"

    def headers(self) -> list[Any]:
        return []

    def key(self) -> bytes:
        return b"v"


def _segment(faces: list[FaceBox], keyframes: list[Keyframe]) -> Received[VideoSegment]:
    info = VideoInfo(uri="file:///v.mp4", uploaded_at=datetime(2026, 1, 1, tzinfo=UTC), tenant="t")
    seg = VideoSegment(
        event_id="e",
        video_id="v",
        segment_index=0,
        segment_count=1,
        start_s=0,
        end_s=2,
        keyframes=keyframes,
        video=info,
        faces=faces,
    )
    return Received(seg, _Raw(), None)  # type: ignore[arg-type]


def test_faces_are_cropped_from_their_keyframe_and_embedded_after_the_keyframes() -> None:
    astronaut, landscape = data.astronaut(), np.full((256, 256, 3), 120, np.uint8)
    face = detect(astronaut)[0]
    keyframes = [Keyframe(t=0.5, jpeg=_jpeg(landscape)), Keyframe(t=1.5, jpeg=_jpeg(astronaut))]
    received = _segment([FaceBox(box=face.box, score=face.score, t=1.5)], keyframes)
    rejected, images, crops, owners = _pixels([received])
    assert rejected == [] and len(images) == 2 and len(crops) == 1
    assert crops[0].shape == (CROP_SIDE, CROP_SIDE, 3) and crops[0].std() > 20  # the face, not the flat frame
    ((_, rows, face_rows),) = owners
    assert (rows.start, rows.stop, face_rows.start, face_rows.stop) == (0, 2, 0, 1)
    model, by_path = ModelRef(name="m", version="1", dim=4), ModelRef(name="face-x", version="f", dim=3)
    (out,) = _embedded(owners, np.eye(2, 4), np.asarray([[0.0, 3.0, 4.0]]), model, by_path, "videos.embeddings")
    message = out.message  # type: ignore[union-attr]
    assert isinstance(message, SegmentEmbedding)
    assert message.vector == pytest.approx([0.5**0.5, 0.5**0.5, 0, 0])  # the keyframes' mean only
    assert message.faces[0].vector == pytest.approx([0.0, 0.6, 0.8]) and message.faces[0].t == 1.5
    assert message.face_model == by_path


def test_a_face_on_no_keyframe_of_its_segment_rejects_the_segment() -> None:
    keyframes = [Keyframe(t=0.5, jpeg=_jpeg(data.astronaut()))]
    good = _segment([], keyframes)
    bad = _segment([FaceBox(box=(0.1, 0.1, 0.2, 0.2), score=1.0, t=9.0)], keyframes)
    rejected, images, crops, owners = _pixels([bad, good])
    assert len(owners) == 1 and len(images) == 1 and crops == []
    assert isinstance(rejected[0], Rejected) and rejected[0].reason == "bad_face"
