"""The generation cache against the real stack and the toy CLIP: a paraphrase of a cached prompt hits once
the video is indexed, an unrelated prompt or other parameters miss, entries expire and can be deleted, and
tenants never see each other's entries."""

from __future__ import annotations

import base64
import io
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from services.clip.toy.world import Scene, layout, render
from services.common.settings import CommonSettings
from services.intake.watch import UploadWatch
from services.media.synthetic import write_world_clip
from tests.integration.conftest import SEARCH_URL

KEY = {"Authorization": "Bearer key-gen"}
CACHED = Scene("triangle", "blue", "two", "large", "water")
OTHER = Scene("circle", "yellow", "one", "small", "night")
REQUEST = {"generator": "toy-gen", "duration_s": 6.0, "aspect_ratio": "4:3"}


def _lookup(prompt: str, headers: dict[str, str] = KEY, **changes: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{SEARCH_URL}/v1/cache/lookup", json={"prompt": prompt, **REQUEST, **changes}, headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _register(
    common: CommonSettings, uri: str, prompt: str, references: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    request = {"prompt": prompt, **REQUEST, "references": references or []}
    body = {"uri": uri, "request": request, "cost": 1.5, **extra}
    response = httpx.post(f"{SEARCH_URL}/v1/cache/entries", json=body, headers=KEY, timeout=60)
    assert response.status_code == 202, response.text
    entry = dict(response.json())
    watch = UploadWatch(common)
    try:
        assert entry["event_id"] in watch.wait([entry["event_id"]], 120).indexed
    finally:
        watch.close()
    return entry


@pytest.fixture(scope="module")
def cached(common: CommonSettings, media_root: Path) -> dict[str, Any]:
    clip = write_world_clip(media_root / "cache" / "generated.mp4", [CACHED, CACHED], seed=95)
    return _register(common, clip.resolve().as_uri(), CACHED.caption)


def test_a_paraphrase_hits_and_an_unrelated_prompt_misses(cached: dict[str, Any]) -> None:
    paraphrase = CACHED.captions()[2]  # "on water, two large blue triangles"
    hit = _lookup(paraphrase)
    assert hit["hit"] and hit["video_id"] == cached["video_id"] and hit["entry_id"] == cached["entry_id"]
    assert hit["score"] >= hit["threshold"] and hit["provenance"]["request"]["prompt"] == CACHED.caption
    assert hit["provenance"]["cost"] == 1.5
    miss = _lookup(OTHER.caption)
    assert not miss["hit"] and miss["best_score"] < miss["threshold"]
    near = _lookup(Scene("triangle", "blue", "three", "large", "water").caption)  # one attribute away
    assert not near["hit"], near
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        _lookup(paraphrase)
        timings.append(time.perf_counter() - started)
    print(f"\ncache lookup p50 {statistics.median(timings) * 1000:.1f} ms over 20 (1 entry)")


@pytest.mark.parametrize(
    "changes",
    [{"generator": "other-gen"}, {"duration_s": 7.0}, {"aspect_ratio": "16:9"}, {"seed": 5}, {"params": {"q": 1}}],
)
def test_parameters_that_must_match_do(cached: dict[str, Any], changes: dict[str, Any]) -> None:
    assert not _lookup(CACHED.caption, **changes)["hit"]


def test_tenants_are_isolated(cached: dict[str, Any]) -> None:
    other = httpx.post(
        f"{SEARCH_URL}/v1/cache/lookup", json={"prompt": CACHED.caption, **REQUEST}, headers={"X-API-Key": "key-a"}
    )
    assert other.status_code == 200 and not other.json()["hit"]
    assert (
        httpx.delete(f"{SEARCH_URL}/v1/cache/entries/{cached['entry_id']}", headers={"X-API-Key": "key-a"}).status_code
        == 404
    )


def test_an_expired_entry_misses(common: CommonSettings, media_root: Path) -> None:
    scene = Scene("square", "red", "one", "large", "sky")
    clip = write_world_clip(media_root / "cache" / "short-lived.mp4", [scene, scene], seed=96)
    _register(common, clip.resolve().as_uri(), scene.caption, ttl_s=1)
    time.sleep(1.1)
    found = _lookup(scene.caption)
    # the expired entry (its own prompt: cosine 1.0) is not even a candidate; only other entries are
    assert not found["hit"] and (found["best_score"] is None or found["best_score"] < found["threshold"])


def test_a_deleted_entry_misses_and_metrics_count(common: CommonSettings, media_root: Path) -> None:
    scene = Scene("cross", "green", "three", "small", "grass")
    clip = write_world_clip(media_root / "cache" / "deleted.mp4", [scene, scene], seed=97)
    entry = _register(common, clip.resolve().as_uri(), scene.caption)
    assert _lookup(scene.caption)["hit"]
    url = f"{SEARCH_URL}/v1/cache/entries/{entry['entry_id']}"
    assert httpx.delete(url, headers=KEY, timeout=30).status_code == 204
    assert not _lookup(scene.caption)["hit"]
    assert httpx.delete(url, headers=KEY, timeout=30).status_code == 404
    metrics = httpx.get(f"{SEARCH_URL}/metrics").text
    assert 'clipstream_cache_lookups_total{outcome="hit"}' in metrics
    assert "clipstream_cache_generation_seconds_saved_total" in metrics


def _png(scene: Scene, seed: int) -> str:
    buffer = io.BytesIO()
    Image.fromarray(render(scene, layout(scene, seed), 320, 240)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_references_must_match_as_well_as_the_prompt(common: CommonSettings, media_root: Path) -> None:
    scene, style, other = (
        Scene("circle", "white", "three", "large", "sand"),
        Scene("square", "purple", "two", "small", "grass"),
        Scene("cross", "red", "one", "large", "night"),
    )
    clip = write_world_clip(media_root / "cache" / "referenced.mp4", [scene, scene], seed=98)
    references = [_png(style, 1), _png(style, 2)]
    entry = _register(common, clip.resolve().as_uri(), scene.caption, references=references)
    same = _lookup(scene.caption, references=[_png(style, 3)])  # another picture of the same reference
    assert same["hit"] and same["entry_id"] == entry["entry_id"], same
    assert same["reference_score"] >= same["reference_threshold"]
    assert len(same["provenance"]["request"]["references"]) == 2  # their digests, not their bytes
    assert not _lookup(scene.caption, references=[_png(other, 1)])["hit"]
    assert not _lookup(scene.caption)["hit"]  # made with references: a request without them is another one


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"prompt": "", **REQUEST}, 422),
        ({"prompt": "   ", **REQUEST}, 400),
        ({"prompt": "x", **REQUEST, "duration_s": 0}, 422),
        ({"prompt": "x", **REQUEST, "aspect_ratio": "wide"}, 422),
        ({"prompt": "x", **REQUEST, "tenant": "gen"}, 422),
        ({"prompt": "x", **REQUEST, "references": ["aGVsbG8="] * 9}, 422),
        ({"prompt": "x", **REQUEST, "references": ["aGVsbG8="]}, 400),
    ],
)
def test_bad_lookups_get_precise_4xx(cached: dict[str, Any], body: dict[str, Any], status: int) -> None:
    response = httpx.post(f"{SEARCH_URL}/v1/cache/lookup", json=body, headers=KEY, timeout=30)
    assert response.status_code == status, response.text


def test_an_entry_outside_the_allowlist_is_refused(stack: object) -> None:
    body = {"uri": "file:///etc/passwd.mp4", "request": {"prompt": "x", **REQUEST}}
    response = httpx.post(f"{SEARCH_URL}/v1/cache/entries", json=body, headers=KEY, timeout=30)
    assert (response.status_code == 422 and "not_allowed" in response.text) or "allowed" in response.text
