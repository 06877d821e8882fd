"""Quality control of generated videos against the real stack and the trained toy CLIP: the QC stage flags
a clip whose second half shows another scene (with that time range), an off-style clip against a reference
set while an on-style one passes; the same checks on demand (`POST /v1/qc`), cohort outliers, and bad input
refused with a precise message while nothing is lost."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from services.clip.toy.world import Scene, layout, render
from services.common.messages import DeadLetter, Topics, VideoQc, VideoUploaded
from services.common.settings import CommonSettings
from services.intake.registration import register
from services.intake.watch import publish_and_wait
from services.media.synthetic import write_world_clip
from tests.integration.conftest import SEARCH_URL
from tests.ledger import TopicTap

TENANT = "qc"
KEY = {"Authorization": "Bearer key-qc"}
ASKED = Scene("triangle", "blue", "two", "large", "water")
OTHER = Scene("circle", "yellow", "one", "small", "night")
STYLE = Scene("square", "green", "three", "large", "sand")
OFF_STYLE = Scene("cross", "white", "one", "small", "sky")
SCENE_S = 3.0


def _reference_png(scene: Scene, seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(render(scene, layout(scene, seed), 320, 240)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def checked(common: CommonSettings, media_root: Path) -> dict[str, Any]:
    folder = media_root / "qc"
    refs = []
    for i in range(4):
        path = folder / "refs" / f"style-{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_reference_png(STYLE, 500 + i))
        refs.append(path.resolve().as_uri())
    references = " ".join(refs)
    clips: dict[str, tuple[list[Scene], dict[str, Any]]] = {
        "switch": ([ASKED, OTHER], {"prompt": ASKED.caption}),
        "steady": ([ASKED, ASKED], {"prompt": ASKED.caption}),
        "on-style": ([STYLE, STYLE], {"references": references}),
        "off-style": ([OFF_STYLE, OFF_STYLE], {"references": references}),
        "plain": ([OTHER], {}),
        "bad-reference": ([OTHER, ASKED], {"references": "file:///etc/passwd"}),
    }
    uploads: dict[str, VideoUploaded] = {}
    for i, (name, (scenes, metadata)) in enumerate(clips.items()):
        path = write_world_clip(folder / f"{name}.mp4", scenes, scene_s=SCENE_S, seed=400 + i)
        uploads[name] = register(path, creator="gen", tenant=TENANT, metadata=metadata)
    tap = TopicTap(common)
    outcomes = publish_and_wait(common, list(uploads.values()), 300)
    assert set(outcomes.indexed) == {u.event_id for u in uploads.values()}, outcomes.failed
    events = {u.event_id: name for name, u in uploads.items()}
    expected = {"switch", "steady", "on-style", "off-style"}
    found: dict[str, VideoQc] = {}
    letters: list[DeadLetter] = []
    deadline = time.monotonic() + 300  # the stage may be working through earlier modules' uploads
    while time.monotonic() < deadline:
        found = {}
        for value in tap.values(Topics.QC, settle_s=3.0):
            verdict = VideoQc.model_validate_json(value)
            if verdict.event_id in events:
                assert events[verdict.event_id] not in found, "one verdict per upload"
                found[events[verdict.event_id]] = verdict
        letters = [d for d in tap.dead_letters(settle_s=1.0) if d.service == "qc"]
        if set(found) == expected and letters:
            break
    tap.close()
    return {"found": found, "uploads": uploads, "letters": letters, "references": refs}


def test_a_clip_that_switches_scene_is_flagged_over_the_second_half(checked: dict[str, Any]) -> None:
    verdict: VideoQc = checked["found"]["switch"]
    assert verdict.verdict == "flagged" and verdict.checks == ["prompt_alignment", "temporal"]
    by_check = {f.check: f for f in verdict.flags}
    assert set(by_check) == {"prompt_alignment", "temporal"}, verdict.flags
    for flag in by_check.values():
        assert abs(flag.start_s - SCENE_S) < 0.5 and abs(flag.end_s - 2 * SCENE_S) < 0.5, flag
    aligned = by_check["prompt_alignment"]
    assert aligned.score < aligned.threshold and verdict.segments[0].alignment is not None
    assert verdict.segments[0].alignment >= aligned.threshold


def test_a_clip_that_shows_its_prompt_throughout_passes(checked: dict[str, Any]) -> None:
    verdict: VideoQc = checked["found"]["steady"]
    assert verdict.verdict == "pass", verdict.flags


def test_an_off_style_clip_is_flagged_against_the_references_and_an_on_style_one_passes(
    checked: dict[str, Any],
) -> None:
    on, off = checked["found"]["on-style"], checked["found"]["off-style"]
    assert on.verdict == "pass" and on.checks == ["style", "temporal"], on.flags
    assert off.verdict == "flagged"
    (flag,) = [f for f in off.flags if f.check == "style"]
    assert flag.start_s < 0.5 and flag.end_s > 2 * SCENE_S - 0.5 and flag.score > flag.threshold


def test_nothing_to_check_publishes_nothing_and_a_bad_reference_is_dead_lettered(checked: dict[str, Any]) -> None:
    assert "plain" not in checked["found"] and "bad-reference" not in checked["found"]
    bad = checked["uploads"]["bad-reference"]
    (letter,) = [d for d in checked["letters"] if json.loads(d.payload)["event_id"] == bad.event_id]
    assert letter.reason == "source_not_allowed" and letter.source_topic == Topics.INDEXED
    status = httpx.get(f"{SEARCH_URL}/v1/videos/{bad.video_id}", headers=KEY, timeout=30)
    assert status.status_code == 200  # indexed and searchable all the same


def _qc(body: dict[str, Any], headers: dict[str, str] = KEY) -> httpx.Response:
    return httpx.post(f"{SEARCH_URL}/v1/qc", json=body, headers=headers, timeout=60)


def test_qc_on_demand_checks_against_the_requests_references(checked: dict[str, Any]) -> None:
    images = [base64.b64encode(_reference_png(OFF_STYLE, 600 + i)).decode() for i in range(3)]
    off = checked["uploads"]["off-style"].video_id
    against_own = _qc({"video_id": off, "references": images})  # the clip's own style: it passes
    assert against_own.status_code == 200, against_own.text
    assert against_own.json()["verdict"] == "pass" and against_own.json()["source"] == "request"
    on = checked["uploads"]["on-style"].video_id
    flagged = _qc({"video_id": on, "references": images, "prompt": STYLE.caption}).json()
    assert flagged["verdict"] == "flagged" and {f["check"] for f in flagged["flags"]} == {"style"}
    by_video = _qc({"video_id": on, "reference_video_ids": [off]}).json()  # an indexed video as the reference
    assert by_video["verdict"] == "flagged"
    stored = _qc({"video_id": checked["uploads"]["switch"].video_id}).json()  # the video's own prompt
    assert stored["source"] == "metadata" and stored["verdict"] == "flagged"
    nothing = _qc({"video_id": checked["uploads"]["plain"].video_id})
    assert nothing.status_code == 200 and nothing.json()["verdict"] == "nothing_to_check"
    assert "nothing to check" in nothing.json()["detail"]


def test_qc_refuses_bad_input_precisely(checked: dict[str, Any]) -> None:
    video = checked["uploads"]["steady"].video_id
    image = base64.b64encode(_reference_png(STYLE, 1)).decode()
    cases = [
        ({"video_id": video, "prompt": "  "}, 400, "empty prompt"),
        ({"video_id": video, "references": [image] * 9}, 400, "9 references, at most 8"),
        ({"video_id": video, "references": [base64.b64encode(b"not an image").decode()]}, 400, "not a readable image"),
        ({"video_id": video, "reference_video_ids": ["vnope"]}, 404, "vnope"),
        ({"video_id": "vnope"}, 404, "vnope"),
        ({"video_id": video, "tenant": "other"}, 422, "tenant"),
    ]
    for body, status, message in cases:
        response = _qc(body)
        assert response.status_code == status and message in response.text, (body, response.text)
    huge = np.random.default_rng(0).integers(0, 255, (2600, 2600, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(huge).save(buffer, format="PNG")
    oversize = _qc({"video_id": video, "references": [base64.b64encode(buffer.getvalue()).decode()]})
    assert oversize.status_code == 413 and "at most" in oversize.text
    assert _qc({"video_id": video}, headers={"Authorization": "Bearer key-a"}).status_code == 404  # other tenant


def test_cohort_outliers_list_the_odd_one_out(common: CommonSettings, media_root: Path) -> None:
    folder = media_root / "qc" / "cohort"
    members = [
        register(
            write_world_clip(folder / f"member-{i}.mp4", [STYLE], scene_s=SCENE_S, seed=700 + i),
            creator="studio",
            tenant=TENANT,
            metadata={"campaign": "spring"},
        )
        for i in range(6)
    ]
    odd = register(
        write_world_clip(folder / "odd.mp4", [OTHER], scene_s=SCENE_S, seed=799),
        creator="studio",
        tenant=TENANT,
        metadata={"campaign": "spring"},
    )
    outcomes = publish_and_wait(common, [*members, odd], 300)
    assert len(outcomes.indexed) == 7, outcomes.failed
    cohort = json.dumps({"metadata": {"campaign": "spring"}})
    response = httpx.get(f"{SEARCH_URL}/v1/qc/outliers", params={"filters": cohort}, headers=KEY, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["cohort_size"] == 7 and [o["video_id"] for o in body["outliers"]] == [odd.video_id]
    assert body["outliers"][0]["z"] > body["z_threshold"]
    small = json.dumps({"metadata": {"campaign": "nope"}})
    refused = httpx.get(f"{SEARCH_URL}/v1/qc/outliers", params={"filters": small}, headers=KEY, timeout=30)
    assert refused.status_code == 400 and "at least 5" in refused.text
    other = httpx.get(f"{SEARCH_URL}/v1/qc/outliers", params={"filters": cohort}, headers={"X-API-Key": "key-a"})
    assert other.status_code == 400 and "has 0 videos" in other.text  # another tenant sees no cohort
