"""Recommendations: videos like some examples and unlike others."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Base64Bytes, BaseModel, ConfigDict, Field, model_validator

from services.common.filters import MetadataFilters
from services.common.http import Tenant
from services.search.deps import Engine
from services.search.engine import video_results
from services.search.recommend import Example

router = APIRouter(tags=["recommend"])


class ExampleIn(BaseModel):
    """One example: an indexed video, a text, or an image (base64, JPEG/PNG/WebP)."""

    model_config = ConfigDict(extra="forbid")

    video_id: str | None = Field(default=None, max_length=128)
    text: str | None = Field(default=None, min_length=1, max_length=1000)
    image: Base64Bytes | None = Field(default=None, description="base64 image bytes")

    @model_validator(mode="after")
    def _exactly_one(self) -> ExampleIn:
        if sum(x is not None for x in (self.video_id, self.text, self.image)) != 1:
            raise ValueError("give exactly one of video_id, text, image")
        return self

    def example(self) -> Example:
        return Example(video_id=self.video_id, text=self.text, image=self.image)


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    positive: list[ExampleIn] = Field(min_length=1, max_length=16, description="more like these")
    negative: list[ExampleIn] = Field(default_factory=list, max_length=16, description="less like these")
    exclude: list[str] = Field(default_factory=list, max_length=1000, description="video ids never returned")
    limit: int = Field(default=10, ge=1, le=100)
    filters: MetadataFilters = Field(default_factory=MetadataFilters)


@router.post("/v1/recommend")
def recommend(body: RecommendRequest, tenant: Tenant, engine: Engine) -> dict[str, Any]:
    """Videos like the positive examples and unlike the negative ones (a Rocchio query over the
    video-level collection); several images as positives make a style query."""
    hits = engine.recommend(
        [e.example() for e in body.positive],
        [e.example() for e in body.negative],
        body.limit,
        body.filters.scoped(tenant),
        body.exclude,
    )
    return {"results": video_results(hits), "limit": body.limit}
