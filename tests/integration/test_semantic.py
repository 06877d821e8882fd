"""Meaning, end to end: clips of the toy world go through the real stack with the trained toy CLIP, and
text queries must find the right video *and* the right shot; a query for something in no video must be
reported as no good match. The captions are the ground truth (`services/clip/toy/world.py`)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from services.clip.card import ModelCard
from services.clip.thresholds import ThresholdBook, model_key
from services.clip.toy.world import Scene
from services.common.filters import Filters
from services.common.messages import VideoUploaded
from services.common.settings import CommonSettings
from services.common.triton import ClipClient
from services.common.vectors import SegmentStore
from services.intake.registration import register
from services.intake.watch import Outcomes, publish_and_wait
from services.media.synthetic import write_world_clip
from services.search.calibrate import Calibrator
from services.search.engine import SearchEngine
from services.search.settings import SearchSettings
from tests.clips import write_excerpt
from tests.integration.conftest import SEARCH_URL

TENANT = "semantic"
SCENE_S = 3.0
VIDEOS: dict[str, list[Scene]] = {
    "world-a": [
        Scene("circle", "red", "two", "large", "grass"),
        Scene("square", "white", "one", "small", "night"),
        Scene("triangle", "yellow", "three", "large", "water"),
    ],
    "world-b": [
        Scene("cross", "blue", "one", "large", "sand"),
        Scene("circle", "purple", "three", "small", "sky"),
        Scene("square", "green", "two", "large", "night"),
    ],
    "world-c": [
        Scene("triangle", "red", "one", "small", "sand"),
        Scene("cross", "yellow", "two", "large", "grass"),
        Scene("circle", "white", "three", "large", "water"),
    ],
}
ABSENT = "one small green triangle in the sky"  # shares at most two attributes with any scene above


@pytest.fixture(scope="module")
def catalogue(common: CommonSettings, media_root: Path) -> dict[str, VideoUploaded]:
    assert ModelCard.read(common.resolved_clip_model()).toy_world, "the stack must serve the toy-world CLIP"
    uploads = {}
    for i, (name, scenes) in enumerate(VIDEOS.items()):
        clip = write_world_clip(media_root / "world" / f"{name}.mp4", scenes, scene_s=SCENE_S, seed=40 + i)
        uploads[name] = register(clip, creator="world", tenant=TENANT, title=scenes[0].caption)
    outcomes: Outcomes = publish_and_wait(common, list(uploads.values()), 300)
    assert set(outcomes.indexed) == {u.event_id for u in uploads.values()}, outcomes.failed
    return uploads


@pytest.fixture(scope="module")
def engine(catalogue: dict[str, VideoUploaded]) -> SearchEngine:
    return SearchEngine(SearchSettings())


CASES = [(name, k, scene) for name, scenes in VIDEOS.items() for k, scene in enumerate(scenes)]


@pytest.mark.parametrize(("name", "k", "scene"), CASES, ids=[s.caption for _, _, s in CASES])
def test_a_caption_finds_its_video_and_its_shot(
    engine: SearchEngine, catalogue: dict[str, VideoUploaded], name: str, k: int, scene: Scene
) -> None:
    hits = engine.by_text(scene.caption, limit=3, filters=Filters(tenant=TENANT))
    assert hits and hits[0].video_id == catalogue[name].video_id, [h.fields.get("title") for h in hits]
    middle = (k + 0.5) * SCENE_S
    assert hits[0].start_s <= middle <= hits[0].end_s, (hits[0].start_s, hits[0].end_s)
    # the segment is the shot: its edges are the cuts, not a fixed grid
    assert abs(hits[0].start_s - k * SCENE_S) < 0.5 and abs(hits[0].end_s - (k + 1) * SCENE_S) < 0.5
    assert hits.good_match is True, (hits[0].score, hits.match_threshold)


def test_content_in_no_video_is_reported_as_no_good_match(
    engine: SearchEngine, catalogue: dict[str, VideoUploaded]
) -> None:
    hits = engine.by_text(ABSENT, limit=3, filters=Filters(tenant=TENANT))
    assert hits, "a search always returns the nearest videos"
    assert hits.match_threshold is not None
    assert hits.good_match is False, (hits[0].score, hits.match_threshold)
    present = engine.by_text(VIDEOS["world-a"][0].caption, limit=1, filters=Filters(tenant=TENANT))
    assert present[0].score > hits[0].score


def test_a_reencoded_excerpt_finds_its_video_and_shot(
    engine: SearchEngine, catalogue: dict[str, VideoUploaded], tmp_path: Path
) -> None:
    source = Path(catalogue["world-b"].uri.removeprefix("file://"))
    excerpt = write_excerpt(source, tmp_path / "excerpt.mp4", SCENE_S + 0.5, 2.0)
    hits = engine.by_video(excerpt, limit=3, filters=Filters(tenant=TENANT))
    assert hits[0].video_id == catalogue["world-b"].video_id
    assert hits[0].start_s == pytest.approx(SCENE_S, abs=0.5), "the excerpt's shot, not another one"
    assert hits.good_match is not False


def test_the_http_api_says_whether_the_best_hit_is_a_good_match(catalogue: dict[str, VideoUploaded]) -> None:
    headers = {"Authorization": "Bearer key-semantic"}
    for query, expected in ((VIDEOS["world-b"][1].caption, True), (ABSENT, False)):
        response = httpx.post(f"{SEARCH_URL}/v1/search/text", headers=headers, json={"query": query}, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["good_match"] is expected
        assert body["results"][0]["good_match"] is expected
        assert isinstance(body["match_threshold"], float)


def test_calibrate_estimates_thresholds_from_the_catalogue(
    common: CommonSettings, catalogue: dict[str, VideoUploaded], tmp_path: Path
) -> None:
    """Own keyframes altered as re-uploads are must score as duplicates, other videos must not; the
    chosen cuts are written to the thresholds file, keyed by the served model."""
    book = ThresholdBook(tmp_path / "thresholds.json")
    store = SegmentStore(common)
    result = Calibrator(store, ClipClient(common.triton_grpc_url), book).run(tenant=TENANT, max_keyframes=50)
    assert result.videos == 3 and result.keyframes == 9
    assert {"duplicate", "text_match"} <= set(result.choices)
    # a cut no better than chance is reported, not written (strong crops of three toy clips may not separate)
    assert set(result.choices) | set(result.skipped) == {"duplicate", "image_match", "text_match"}
    assert all("no separation" in why for why in result.skipped.values())
    assert result.choices["duplicate"].positives == 9 and result.choices["duplicate"].negatives == 9
    written = book.get(result.target.model)
    assert written.source == "calibrate"
    assert written.duplicate == pytest.approx(result.choices["duplicate"].threshold)
    assert model_key(result.target.model) in (tmp_path / "thresholds.json").read_text()
    # on the toy world, altered copies of a keyframe mostly stand apart from every other video's shots
    dup = result.choices["duplicate"]
    assert dup.precision == 1.0 and dup.recall >= 0.75, dup
    text = result.choices["text_match"]
    assert (text.positives, text.negatives) == (3, 6)  # each title against its own video and the two others
    assert text.recall == 1.0, text
