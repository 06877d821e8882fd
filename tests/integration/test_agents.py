"""Recommendations and the agents' MCP server, against the real stack and the toy CLIP: examples pull and
push the query, an MCP client (the SDK's own) lists the tools and gets search results, scoped by its key."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from PIL import Image

from services.clip.toy.world import Scene, layout, render
from services.common.messages import VideoUploaded
from services.common.settings import CommonSettings
from services.intake.registration import register
from services.intake.watch import Outcomes, publish_and_wait
from services.media.synthetic import write_world_clip
from tests.integration.conftest import SEARCH_URL

TENANT = "agents"
KEY = {"Authorization": "Bearer key-agents"}
REPO = Path(__file__).resolve().parents[2]
VIDEOS: dict[str, list[Scene]] = {
    "w1": [Scene("circle", "red", "two", "large", "grass"), Scene("square", "white", "one", "small", "night")],
    "w2": [Scene("cross", "blue", "one", "large", "sand"), Scene("triangle", "yellow", "three", "small", "sky")],
    "w3": [Scene("square", "green", "three", "large", "water"), Scene("circle", "purple", "one", "small", "sand")],
}


@pytest.fixture(scope="module")
def catalogue(common: CommonSettings, media_root: Path) -> dict[str, VideoUploaded]:
    uploads = {
        name: register(write_world_clip(media_root / "agents" / f"{name}.mp4", scenes, seed=80 + i), tenant=TENANT)
        for i, (name, scenes) in enumerate(VIDEOS.items())
    }
    outcomes: Outcomes = publish_and_wait(common, list(uploads.values()), 300)
    assert set(outcomes.indexed) == {u.event_id for u in uploads.values()}, outcomes.failed
    return uploads


def _recommend(body: dict[str, Any], headers: dict[str, str] = KEY) -> httpx.Response:
    return httpx.post(f"{SEARCH_URL}/v1/recommend", json=body, headers=headers, timeout=60)


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["video_id"] for r in response.json()["results"]]


def test_recommend_follows_the_examples_and_a_negative_one_demotes(catalogue: dict[str, VideoUploaded]) -> None:
    ids = {name: u.video_id for name, u in catalogue.items()}
    liked = {"text": VIDEOS["w1"][0].caption}
    plain = _ids(_recommend({"positive": [liked]}))
    assert plain[0] == ids["w1"] and set(plain) == set(ids.values())
    # like w3: the other two in some order; the first of them as a negative example drops below the second
    near = _ids(_recommend({"positive": [{"video_id": ids["w3"]}]}))
    assert len(near) == 2 and ids["w3"] not in near  # the example itself is left out
    pushed = _ids(_recommend({"positive": [{"video_id": ids["w3"]}], "negative": [{"video_id": near[0]}]}))
    assert pushed == [near[1], near[0]]  # demoted, not removed
    assert ids["w1"] not in _ids(_recommend({"positive": [liked], "exclude": [ids["w1"]]}))
    scene = VIDEOS["w3"][0]
    out = io.BytesIO()
    Image.fromarray(render(scene, layout(scene, 5), 320, 240, t=0.5)).save(out, format="PNG")
    styled = _ids(_recommend({"positive": [{"image": base64.b64encode(out.getvalue()).decode()}]}))
    assert styled[0] == ids["w3"]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ({"positive": []}, KEY, 422),
        ({"positive": [{"video_id": "x", "text": "y"}]}, KEY, 422),
        ({"positive": [{"text": "x"}] * 17}, KEY, 422),
        ({"positive": [{"image": "not base64!"}]}, KEY, 422),
        ({"positive": [{"text": "   "}]}, KEY, 400),
        ({"positive": [{"video_id": "vnope"}]}, KEY, 404),
        ({"positive": [{"text": "x"}], "filters": {"tenant": "other"}}, KEY, 422),
    ],
)
def test_bad_recommendations_get_precise_4xx(
    catalogue: dict[str, VideoUploaded], body: dict[str, Any], headers: dict[str, str], status: int
) -> None:
    response = _recommend(body, headers)
    assert response.status_code == status, response.text


def test_another_tenants_video_is_no_example(catalogue: dict[str, VideoUploaded]) -> None:
    response = _recommend({"positive": [{"video_id": catalogue["w1"].video_id}]}, {"X-API-Key": "key-a"})
    assert response.status_code == 404


def _session(key: str, calls: list[tuple[str, dict[str, Any]]]) -> tuple[list[str], list[Any]]:
    """Runs an MCP client session against `python -m services.agent_tools` over stdio."""
    env = {
        **os.environ,
        "CLIPSTREAM_AGENT_TOOLS_SEARCH_URL": SEARCH_URL,
        "CLIPSTREAM_AGENT_TOOLS_API_KEY": key,
    }
    server = StdioServerParameters(command=sys.executable, args=["-m", "services.agent_tools"], env=env, cwd=REPO)

    async def run() -> tuple[list[str], list[Any]]:
        async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = [t.name for t in (await session.list_tools()).tools]
            return tools, [await session.call_tool(name, args) for name, args in calls]

    return asyncio.run(run())


def test_an_mcp_client_lists_the_tools_and_gets_search_results(catalogue: dict[str, VideoUploaded]) -> None:
    w1 = catalogue["w1"].video_id
    tools, (found, video, other, checked) = _session(
        "key-agents",
        [
            ("search_text", {"query": VIDEOS["w1"][1].caption, "limit": 3}),
            ("get_video", {"video_id": w1}),
            ("get_video", {"video_id": "vnope"}),
            ("quality_check", {"video_id": w1, "prompt": VIDEOS["w1"][1].caption}),
        ],
    )
    expected = {
        "search_text",
        "search_image",
        "get_video",
        "similar_videos",
        "recommend",
        "video_duplicates",
        "cache_lookup",
        "quality_check",
        "quality_outliers",
    }
    assert expected <= set(tools)
    body = json.loads(found.content[0].text)
    assert body["results"][0]["video_id"] == w1
    assert 3.0 - 0.5 <= body["results"][0]["start_s"] <= 3.0 + 0.5  # the second shot, where the caption is
    assert "thumbnail" not in body["results"][0]
    assert len(json.loads(video.content[0].text)["segments"]) == 2
    assert other.isError and "404" in other.content[0].text
    qc = json.loads(checked.content[0].text)  # the prompt shows in the second shot only
    assert qc["verdict"] == "flagged"
    assert [(f["check"], f["start_s"]) for f in qc["flags"] if f["check"] == "prompt_alignment"] == [
        ("prompt_alignment", 0.0)
    ]


def test_the_mcp_tools_see_only_their_keys_tenant(catalogue: dict[str, VideoUploaded]) -> None:
    _, (found, video) = _session(
        "key-a",
        [
            ("search_text", {"query": VIDEOS["w1"][1].caption, "limit": 50}),
            ("get_video", {"video_id": catalogue["w1"].video_id}),
        ],
    )
    ids = {r["video_id"] for r in json.loads(found.content[0].text)["results"]}
    assert not ids & {u.video_id for u in catalogue.values()}
    assert video.isError and "404" in video.content[0].text
