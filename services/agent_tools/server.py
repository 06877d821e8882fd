"""The clipstream MCP server (official `mcp` SDK, FastMCP): search by text or image, a video and its
segments, similar videos, recommendations, near-duplicates and quality control, as tools an agent can call.

Every tool calls the search API with the server's API key, so an agent gets exactly the tenant scoping,
validation and limits of the HTTP API (a 4xx comes back as a tool error with the API's message). Results
leave out thumbnails (base64 JPEGs would crowd an agent's context) and keep what identifies a moment:
video id, title, score, start/end seconds."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import httpx
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError

from services.agent_tools.settings import AgentToolsSettings

DROPPED = ("thumbnail",)


def _slim(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _slim(v) for k, v in value.items() if k not in DROPPED}
    if isinstance(value, list):
        return [_slim(v) for v in value]
    return value


def _examples(video_ids: list[str] | None, texts: list[str] | None) -> list[dict[str, str]]:
    return [{"video_id": v} for v in video_ids or []] + [{"text": t} for t in texts or []]


def create_server(settings: AgentToolsSettings) -> FastMCP:
    mcp = FastMCP(
        "clipstream",
        instructions=(
            "Search one tenant's video catalogue by meaning. search_text finds the best moment (segment) of "
            "each video for a description; get_video lists a video's segments; similar_videos, recommend and "
            "video_duplicates relate videos to each other; quality_check tells whether a generated video shows "
            "its prompt and references' style, quality_outliers lists a campaign's odd ones out. Scores are "
            "cosine similarities of the served CLIP; good_match false means even the best result is below the "
            "model's 'no good match' threshold."
        ),
        host=settings.host,
        port=settings.port,
    )
    client = httpx.Client(
        base_url=settings.search_url,
        headers={"Authorization": f"Bearer {settings.api_key.get_secret_value()}"},
        timeout=settings.timeout_s,
    )

    def call(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ToolError(f"the search API is unreachable: {exc}") from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ToolError(f"{response.status_code}: {detail}")
        return dict(_slim(response.json()))

    @mcp.tool()
    def search_text(
        query: str, limit: int = 10, filters: dict[str, Any] | None = None, collapse_duplicates: bool = False
    ) -> dict[str, Any]:
        """Videos whose moments match a text description, best first, each with its best segment (start_s,
        end_s). `filters`: creator, tags, metadata (key: value), uploaded_after/before, min/max width,
        height, duration_s. `collapse_duplicates`: one result per group of near-duplicate videos."""
        body = {"query": query, "limit": limit, "filters": filters or {}, "collapse_duplicates": collapse_duplicates}
        return call("POST", "/v1/search/text", json=body)

    @mcp.tool()
    def search_image(image_base64: str, limit: int = 10) -> dict[str, Any]:
        """Videos with moments that look like an image (JPEG, PNG or WebP, base64-encoded)."""
        try:
            data = base64.b64decode(image_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ToolError(f"image_base64 is not base64: {exc}") from exc
        return call("POST", "/v1/search/image", files={"file": ("query", data)}, data={"limit": str(limit)})

    @mcp.tool()
    def get_video(video_id: str) -> dict[str, Any]:
        """A video's metadata and its segments (start/end seconds, keyframe time)."""
        return call("GET", f"/v1/videos/{video_id}")

    @mcp.tool()
    def similar_videos(video_id: str, limit: int = 10) -> dict[str, Any]:
        """Videos most like this one as a whole."""
        return call("GET", f"/v1/videos/{video_id}/similar", params={"limit": limit})

    @mcp.tool()
    def recommend(
        positive_video_ids: list[str] | None = None,
        positive_texts: list[str] | None = None,
        negative_video_ids: list[str] | None = None,
        negative_texts: list[str] | None = None,
        exclude: list[str] | None = None,
        limit: int = 10,
    ) -> dict[str, Any]:
        """Videos like the positive examples and unlike the negative ones (at least one positive)."""
        body = {
            "positive": [{"video_id": v} for v in positive_video_ids or []]
            + [{"text": t} for t in positive_texts or []],
            "negative": [{"video_id": v} for v in negative_video_ids or []]
            + [{"text": t} for t in negative_texts or []],
            "exclude": exclude or [],
            "limit": limit,
        }
        return call("POST", "/v1/recommend", json=body)

    @mcp.tool()
    def cache_lookup(
        prompt: str,
        generator: str,
        duration_s: float,
        aspect_ratio: str = "16:9",
        seed: int | None = None,
        reference_images_base64: list[str] | None = None,
    ) -> dict[str, Any]:
        """Before generating a video: whether one generated for a request like this is cached (same
        generator, duration, aspect ratio and seed; a prompt close enough; the same reference images, if
        any). A hit names the video."""
        body: dict[str, Any] = {
            "prompt": prompt,
            "generator": generator,
            "duration_s": duration_s,
            "aspect_ratio": aspect_ratio,
            "references": reference_images_base64 or [],
        }
        if seed is not None:
            body["seed"] = seed
        return call("POST", "/v1/cache/lookup", json=body)

    @mcp.tool()
    def video_duplicates(video_id: str) -> dict[str, Any]:
        """Near-duplicate verdicts on a video (duplicate, contains, contained_in, with matched time ranges)
        and its duplicate group."""
        return call("GET", f"/v1/videos/{video_id}/duplicates")

    @mcp.tool()
    def quality_check(
        video_id: str,
        prompt: str | None = None,
        reference_video_ids: list[str] | None = None,
        reference_images_base64: list[str] | None = None,
    ) -> dict[str, Any]:
        """Whether a (generated) video matches the intent: each segment's alignment with the prompt, its
        deviation from the references' style, sudden jumps. Verdict pass / flagged (each flag names the
        check and the time range) / nothing_to_check. Without prompt and references, those stored in the
        video's metadata are used."""
        body: dict[str, Any] = {"video_id": video_id, "reference_video_ids": reference_video_ids or []}
        if prompt is not None:
            body["prompt"] = prompt
        if reference_images_base64:
            body["references"] = reference_images_base64
        return call("POST", "/v1/qc", json=body)

    @mcp.tool()
    def quality_outliers(campaign: str | None = None, creator: str | None = None, limit: int = 20) -> dict[str, Any]:
        """Videos of a cohort (a campaign in the videos' metadata and/or a creator) far from the rest of it."""
        filters: dict[str, Any] = {}
        if campaign is not None:
            filters["metadata"] = {"campaign": campaign}
        if creator is not None:
            filters["creator"] = creator
        return call("GET", "/v1/qc/outliers", params={"filters": json.dumps(filters), "limit": limit})

    return mcp
