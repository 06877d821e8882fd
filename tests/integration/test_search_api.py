"""The search service's HTTP API and web page, against the running stack: tenants, filters, uploads."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from services.common.messages import VideoUploaded
from services.common.settings import CommonSettings
from services.intake.registration import register
from services.intake.watch import Outcomes, publish_and_wait
from services.media.decode import DecodeOptions, decode_video
from services.media.synthetic import write_clip
from tests.clips import write_excerpt
from tests.integration.conftest import SEARCH_URL

A, B = {"Authorization": "Bearer key-a"}, {"X-API-Key": "key-b"}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def catalogue(common: CommonSettings, media_root: Path) -> dict[str, VideoUploaded]:
    folder = media_root / "tenants"
    specs = {
        "a-beach": ("tenant-a", "ann", ["beach", "summer"], 21),
        "a-city": ("tenant-a", "bob", ["city"], 22),
        "a-forest": ("tenant-a", "ann", ["forest", "summer"], 23),
        "b-beach": ("tenant-b", "cid", ["beach"], 24),
        "b-snow": ("tenant-b", "cid", ["snow"], 25),
        "b-emoji": ("tenant-b", "zoë 🎬 studio", ["emoji"], 26),
    }
    free: dict[str, dict[str, Any]] = {
        "a-beach": {"lang": "en", "season": 2},
        "a-forest": {"lang": "en", "season": 3},
        "b-beach": {"lang": "en"},
    }
    uploads = {}
    for name, (tenant, creator, tags, seed) in specs.items():
        clip = write_clip(folder / f"{name}.mp4", seconds=8.0, size=(320, 180), seed=seed, cuts=(4.0,))
        uploads[name] = register(clip, creator=creator, tenant=tenant, tags=tags, metadata=free.get(name))
    outcomes: Outcomes = publish_and_wait(common, list(uploads.values()), 300)
    assert set(outcomes.indexed) == {u.event_id for u in uploads.values()}, outcomes.failed
    return uploads


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["video_id"] for r in response.json()["results"]]


def _text(headers: dict[str, str], **body: object) -> httpx.Response:
    return httpx.post(f"{SEARCH_URL}/v1/search/text", headers=headers, json={"query": "a scene", **body}, timeout=30)


def test_keys_are_required(catalogue: dict[str, VideoUploaded]) -> None:
    assert _text({}).status_code == 401
    assert _text({"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(f"{SEARCH_URL}/openapi.json").json()["info"]["title"] == "clipstream search"


def test_tenants_see_only_their_videos(catalogue: dict[str, VideoUploaded]) -> None:
    ids = {name: u.video_id for name, u in catalogue.items()}
    assert set(_ids(_text(A, limit=50))) == {ids["a-beach"], ids["a-city"], ids["a-forest"]}
    assert set(_ids(_text(B, limit=50))) == {ids["b-beach"], ids["b-snow"], ids["b-emoji"]}
    own = httpx.get(f"{SEARCH_URL}/v1/videos/{ids['a-city']}", headers=A)
    assert own.status_code == 200 and len(own.json()["segments"]) == 2
    assert httpx.get(f"{SEARCH_URL}/v1/videos/{ids['a-city']}", headers=B).status_code == 404
    assert httpx.get(f"{SEARCH_URL}/v1/videos/{ids['a-city']}/similar", headers=B).status_code == 404
    similar = _ids(httpx.get(f"{SEARCH_URL}/v1/videos/{ids['a-city']}/similar", headers=A))
    assert set(similar) == {ids["a-beach"], ids["a-forest"]}


def test_filters_and_pagination(catalogue: dict[str, VideoUploaded]) -> None:
    ids = {name: u.video_id for name, u in catalogue.items()}
    assert set(_ids(_text(A, filters={"tags": ["summer"]}))) == {ids["a-beach"], ids["a-forest"]}
    assert _ids(_text(A, filters={"tags": ["summer", "beach"]})) == [ids["a-beach"]]
    assert _ids(_text(A, filters={"creator": "bob"})) == [ids["a-city"]]
    assert _ids(_text(A, filters={"tags": ["snow"]})) == []  # tenant-b's tag
    assert _ids(_text(A, filters={"min_height": 181})) == []
    assert len(_ids(_text(A, filters={"min_height": 180, "max_duration_s": 9}))) == 3
    assert _ids(_text(A, filters={"uploaded_after": "2999-01-01T00:00:00Z"})) == []
    assert set(_ids(_text(A, filters={"metadata": {"lang": "en"}}))) == {ids["a-beach"], ids["a-forest"]}
    assert _ids(_text(A, filters={"metadata": {"lang": "en", "season": 3}})) == [ids["a-forest"]]
    assert _ids(_text(A, filters={"metadata": {"season": "3"}})) == []  # typed: the string is not the number
    assert _ids(_text(B, filters={"metadata": {"lang": "en"}})) == [ids["b-beach"]]  # tenant-scoped
    results = _text(A, filters={"metadata": {"season": 3}}).json()["results"]
    assert results[0]["metadata"] == {"lang": "en", "season": 3}
    first, second = _ids(_text(A, limit=2)), _ids(_text(A, limit=2, offset=2))
    assert len(first) == 2 and len(second) == 1 and not set(first) & set(second)


def test_creators_outside_the_basic_multilingual_plane_can_be_filtered(catalogue: dict[str, VideoUploaded]) -> None:
    """An emoji was JSON-escaped as a surrogate pair, which Milvus' parser refused: HTTP 500, never a match."""
    assert _ids(_text(B, filters={"creator": "zoë 🎬 studio"})) == [catalogue["b-emoji"].video_id]
    assert _ids(_text(B, filters={"creator": 'back\\slash " quote'})) == []
    assert _text(B, filters={"creator": "bell" + chr(7)}).status_code == 422  # a control character


def test_uploads_are_refused_before_they_are_read(catalogue: dict[str, VideoUploaded]) -> None:
    """No key: 401 from the headers, before a streamed body is read (FastAPI would parse and spool the whole
    form first, and answer 413 here); over the size limit: 413, with or without a Content-Length."""

    def streamed(megabytes: int) -> Iterator[bytes]:
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="q.mp4"\r\n\r\n'
        for _ in range(megabytes):
            yield b"\0" * 1024**2

    multipart = {"Content-Type": "multipart/form-data; boundary=x"}
    url = f"{SEARCH_URL}/v1/search/video"
    assert httpx.post(url, headers=multipart, content=streamed(60), timeout=60).status_code == 401
    assert httpx.post(url, headers={**A, **multipart}, content=streamed(60), timeout=60).status_code == 413
    too_big = httpx.post(url, headers=A, files={"file": ("q.mp4", b"\0" * (60 * 1024**2))}, timeout=60)
    assert too_big.status_code == 413


def test_a_sliver_image_is_refused_and_image_search_keeps_working(catalogue: dict[str, VideoUploaded]) -> None:
    """A 40000x1 PNG made Triton allocate 22.5 GB and die; now it is refused from its header (400) and,
    whatever passes, is cropped before it is resized."""
    buf = io.BytesIO()
    Image.new("RGB", (40000, 1), (10, 200, 30)).save(buf, format="PNG")
    sliver = httpx.post(
        f"{SEARCH_URL}/v1/search/image", headers=A, files={"file": ("s.png", buf.getvalue())}, timeout=60
    )
    assert sliver.status_code == 400 and "40000x1" in sliver.json()["detail"]
    ok = io.BytesIO()
    Image.new("RGB", (640, 360), (10, 200, 30)).save(ok, format="PNG")
    after = httpx.post(f"{SEARCH_URL}/v1/search/image", headers=A, files={"file": ("k.png", ok.getvalue())}, timeout=60)
    assert after.status_code == 200, after.text
    assert httpx.get(f"{SEARCH_URL}/readyz").status_code == 200


@pytest.mark.parametrize(
    "filters",
    [
        {"creator": 'ann" or tenant == "tenant-b'},
        {"creator": "x' or 1==1 or '"},
        {"creator": '\\" || true || \\"'},
        {"metadata": {"lang": 'en" or tenant == "tenant-b'}},
    ],
)
def test_injection_payloads_are_neutralised(catalogue: dict[str, VideoUploaded], filters: dict[str, str]) -> None:
    assert _ids(_text(A, filters=filters)) == []


@pytest.mark.parametrize(
    "filters",
    [
        {"tenant": "tenant-b"},
        {"expr": "1 == 1"},
        {"tags": ['beach" or "1']},
        {"min_height": "1 or 1"},
        {"metadata": {'lang"] == "en" or metadata["x': "en"}},
        {"metadata": {"lang": ["en"]}},
        {"metadata": "lang == en"},
    ],
)
def test_hostile_filter_fields_are_rejected(catalogue: dict[str, VideoUploaded], filters: dict[str, object]) -> None:
    assert _text(A, filters=filters).status_code == 422


def test_image_and_video_uploads(catalogue: dict[str, VideoUploaded], tmp_path: Path) -> None:
    clip = Path(catalogue["a-forest"].uri.removeprefix("file://"))
    keyframe = decode_video(clip, DecodeOptions()).segments[1].keyframes[0]
    files = {"file": ("k.jpg", keyframe.jpeg, "image/jpeg")}
    hits = httpx.post(f"{SEARCH_URL}/v1/search/image", headers=A, files=files, timeout=30).json()["results"]
    assert hits[0]["video_id"] == catalogue["a-forest"].video_id
    assert hits[0]["start_s"] <= keyframe.t <= hits[0]["end_s"]
    assert hits[0]["thumbnail"].startswith("data:image/jpeg;base64,")
    excerpt = write_excerpt(clip, tmp_path / "x.mp4", 4.5, 2.0)
    files = {"file": ("x.mp4", excerpt.read_bytes(), "video/mp4")}
    form = {"filters": json.dumps({"tags": ["summer"]})}
    hits = httpx.post(f"{SEARCH_URL}/v1/search/video", headers=A, files=files, data=form, timeout=60).json()
    assert hits["results"][0]["video_id"] == catalogue["a-forest"].video_id
    bad = httpx.post(f"{SEARCH_URL}/v1/search/image", headers=A, files={"file": ("x.jpg", b"no", "image/jpeg")})
    assert bad.status_code == 400
    bad = httpx.post(f"{SEARCH_URL}/v1/search/video", headers=A, files={"file": ("x.mp4", b"no" * 99, "video/mp4")})
    assert bad.status_code == 400


def test_image_and_video_queries_are_tenant_scoped_and_need_a_key(catalogue: dict[str, VideoUploaded]) -> None:
    """Tenant B querying with tenant A's own keyframe and excerpt never sees tenant A's videos."""
    clip = Path(catalogue["a-forest"].uri.removeprefix("file://"))
    keyframe = decode_video(clip, DecodeOptions()).segments[1].keyframes[0]
    image = {"file": ("k.jpg", keyframe.jpeg, "image/jpeg")}
    video = {"file": ("c.mp4", clip.read_bytes(), "video/mp4")}
    tenant_b = {catalogue[n].video_id for n in ("b-beach", "b-snow", "b-emoji")}
    for path, files in (("image", image), ("video", video)):
        url = f"{SEARCH_URL}/v1/search/{path}"
        assert httpx.post(url, files=files, timeout=60).status_code == 401
        assert httpx.post(url, headers={"X-API-Key": "nope"}, files=files, timeout=60).status_code == 401
        seen = {r["video_id"] for r in httpx.post(url, headers=B, files=files, timeout=60).json()["results"]}
        assert seen and seen <= tenant_b, seen


def test_web_page_in_chromium(catalogue: dict[str, VideoUploaded], tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    assert chromium.exists(), "Debian chromium is not installed (scripts/bootstrap.sh installs it)"
    image = tmp_path / "query.png"
    clip = Path(catalogue["a-beach"].uri.removeprefix("file://"))
    jpeg = decode_video(clip, DecodeOptions()).segments[0].keyframes[0].jpeg
    Image.open(io.BytesIO(jpeg)).save(image)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "search-page.png"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(SEARCH_URL + "/")
        page.fill("#key", "key-a")
        page.dispatch_event("#key", "change")
        page.fill("#q", "a scene by the sea")
        page.click("button[type=submit]")
        page.wait_for_selector("#results[data-source='text:a scene by the sea'] .card", timeout=30_000)
        assert page.locator(".card").count() == 3
        page.fill("#meta", "season=3, lang=en")  # typed like the stored values: 3 is a number
        page.click("button[type=submit]")
        page.wait_for_function("document.querySelectorAll('.card').length === 1", timeout=30_000)
        assert page.locator(".card").first.get_attribute("data-video-id") == catalogue["a-forest"].video_id
        assert page.inner_text(".card .free") == "lang: en · season: 3"
        page.fill("#meta", "")
        page.set_input_files("#file", str(image))
        page.wait_for_selector(f"#results[data-source='image:{image.name}'] .card", timeout=30_000)
        assert page.locator(".card").first.get_attribute("data-video-id") == catalogue["a-beach"].video_id
        page.locator(".card").first.click()
        page.wait_for_selector("#segments .segment", timeout=30_000)
        assert page.locator("#segments .segment").count() == 2
        assert page.inner_text("#detailTitle").endswith("· 2 segments")
        assert page.inner_text("#status") == "3 videos"
        page.wait_for_function("[...document.images].every((i) => i.complete)")
        # every card and segment shows its decoded thumbnail (not a broken or empty image)
        sizes = page.evaluate("[...document.querySelectorAll('.card img, #segments img')].map(i => i.naturalWidth)")
        assert len(sizes) == page.locator(".card").count() + 2 and all(w > 0 for w in sizes), sizes
        page.screenshot(path=str(shot), full_page=True)  # kept for a person to look at
        browser.close()


@pytest.fixture(scope="module")
def playable(common: CommonSettings, media_root: Path) -> dict[str, VideoUploaded]:
    """A VP9/WebM clip a browser plays, and an MPEG-4 Part 2 one it cannot, for tenant `player`."""
    folder = media_root / "player"
    clips = {
        "webm": write_clip(
            folder / "plays.webm", seconds=6.0, size=(320, 180), seed=31, cuts=(3.0,), codec="libvpx-vp9"
        ),
        "mpeg4": write_clip(folder / "does-not.avi", seconds=4.0, size=(320, 180), seed=32),
    }
    uploads = {name: register(path, creator="player", tenant="player") for name, path in clips.items()}
    outcomes: Outcomes = publish_and_wait(common, list(uploads.values()), 300)
    assert set(outcomes.indexed) == {u.event_id for u in uploads.values()}, outcomes.failed
    return uploads


def test_playback_links_are_signed_scoped_and_served_with_ranges(playable: dict[str, VideoUploaded]) -> None:
    player = {"Authorization": "Bearer key-player"}
    video_id = playable["webm"].video_id
    assert httpx.get(f"{SEARCH_URL}/v1/videos/{video_id}/play", headers=A).status_code == 404  # not tenant-a's
    link = httpx.get(f"{SEARCH_URL}/v1/videos/{video_id}/play", params={"start_s": 3.0}, headers=player).json()
    url, _, fragment = link["url"].partition("#")
    assert fragment == "t=3.00" and link["expires_in_s"] > 0
    size = Path(playable["webm"].uri.removeprefix("file://")).stat().st_size
    partial = httpx.get(f"{SEARCH_URL}{url}", headers={"Range": "bytes=100-199"})
    assert partial.status_code == 206 and len(partial.content) == 100
    assert partial.headers["content-range"] == f"bytes 100-199/{size}"
    assert partial.headers["content-type"] == "video/webm"
    token = url.removeprefix("/media/")
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert httpx.get(f"{SEARCH_URL}/media/{forged}").status_code == 403


def test_the_page_plays_the_moment_in_chromium(playable: dict[str, VideoUploaded]) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(SEARCH_URL + "/")
        page.fill("#key", "key-player")
        page.dispatch_event("#key", "change")
        page.fill("#q", "a scene")
        page.click("button[type=submit]")
        page.wait_for_selector("#results[data-source='text:a scene'] .card", timeout=30_000)
        page.locator(f".card[data-video-id='{playable['webm'].video_id}']").click()
        page.wait_for_selector("#segments .segment", timeout=30_000)
        page.wait_for_function("document.querySelector('#player').readyState >= 2", timeout=30_000)
        start = float(page.get_attribute("#player", "data-start") or "nan")
        assert abs(page.evaluate("document.querySelector('#player').currentTime") - start) < 1.0
        page.locator("#segments .segment").nth(1).click()  # the second shot starts at 3 s
        page.wait_for_function(
            "Math.abs(document.querySelector('#player').currentTime - 3.0) < 1.0 && "
            "document.querySelector('#player').readyState >= 2",
            timeout=30_000,
        )
        assert page.inner_text("#playerStatus") == ""
        page.locator(f".card[data-video-id='{playable['mpeg4'].video_id}']").click()
        page.wait_for_function("document.querySelector('#playerStatus').textContent.length > 0", timeout=30_000)
        assert "cannot be played by the browser" in page.inner_text("#playerStatus")
        browser.close()


def test_the_page_uploads_through_the_gateway_with_progress(
    playable: dict[str, VideoUploaded], media_root: Path
) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    clip = write_clip(
        media_root / "player" / "from-the-page.webm", seconds=4.0, size=(320, 180), seed=33, codec="libvpx-vp9"
    )
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(SEARCH_URL + "/")
        page.fill("#key", "key-player")
        page.dispatch_event("#key", "change")
        page.wait_for_selector("#uploadForm:not([hidden])", timeout=10_000)
        page.set_input_files("#upload", str(clip))
        page.wait_for_selector("#uploadStatus[data-stage='indexed']", timeout=180_000)
        assert page.evaluate("document.querySelector('#uploadProgress').value") == 1
        page.fill("#q", "a scene")
        page.click("button[type=submit]")
        page.wait_for_selector("#results[data-source='text:a scene'] .card", timeout=30_000)
        titles = page.eval_on_selector_all(".card .title", "els => els.map(e => e.textContent)")
        assert "from-the-page.webm" in titles, titles
        browser.close()


def test_the_cli_searches_by_video_and_exits_clean(catalogue: dict[str, VideoUploaded], tmp_path: Path) -> None:
    """The demo's last query is a video one: its decoder child must be stopped before the interpreter exits,
    or Python prints a traceback after the results (a newcomer's first run must end clean)."""
    clip = Path(catalogue["a-forest"].uri.removeprefix("file://"))
    argv = [sys.executable, "-m", "services.cli", "search", "--video", str(clip), "--tenant", "tenant-a"]
    env = {**os.environ, "COLUMNS": "400"}  # one table row per line
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    first = next(line for line in done.stdout.splitlines() if line.strip("│ ").startswith("1 "))
    assert clip.name in first, done.stdout
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]


def test_the_login_link_opens_a_ready_page_in_chromium(catalogue: dict[str, VideoUploaded]) -> None:
    """`clipstream login` prints a one-time link; opened, the page holds tenant-a's key without the key ever
    being in a URL, shows tenant-a's latest videos before any query, and the same link does not work twice."""
    playwright = pytest.importorskip("playwright.sync_api")
    argv = [sys.executable, "-m", "services.cli", "login", "--tenant", "tenant-a"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "400"})
    assert done.returncode == 0, done.stderr[-3000:]
    found = re.search(re.escape(SEARCH_URL) + r"/#login=([A-Za-z0-9_-]{43})", done.stdout)
    assert found and "key-a" not in done.stdout, done.stdout
    link, token = found.group(0), found.group(1)
    tenant_a = {catalogue[n].video_id for n in ("a-beach", "a-city", "a-forest")}
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        urls: list[str] = []
        page.on("request", lambda r: urls.append(r.url))
        page.goto(link)
        page.wait_for_selector("#results[data-source='latest'] .card", timeout=30_000)
        assert page.input_value("#key") == "key-a"
        assert page.evaluate("location.hash") == ""  # the token left the address bar and history
        assert page.evaluate("sessionStorage.getItem('clipstream-key')") == "key-a"
        assert page.evaluate("localStorage.length") == 0
        cards = page.eval_on_selector_all(".card", "els => els.map(e => e.dataset.videoId)")
        assert set(cards) == tenant_a and len(cards) == 3, cards
        assert page.inner_text("#status") == "the 3 latest videos"
        page.wait_for_function("[...document.images].every((i) => i.complete)")
        widths = page.eval_on_selector_all(".card img", "els => els.map(i => i.naturalWidth)")
        assert all(w > 0 for w in widths), widths
        assert not [u for u in urls if token in u or "key-a" in u], urls
        again = browser.new_page()
        again.goto(link)  # the link is used up
        again.wait_for_function("document.querySelector('#status').textContent.includes('refused')", timeout=30_000)
        assert "401" in again.inner_text("#status") and again.input_value("#key") == ""
        browser.close()
