"""Searches by text, image or video (an excerpt finds its source), and videos like an indexed one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from services.common.errors import InvalidRequest, TooLarge
from services.common.filters import Filters, MetadataFilters
from services.common.http import Tenant
from services.search.deps import Engine, Settings
from services.search.engine import Hits, hits_to_json
from services.search.routes.models import VideoId, parse_filters

router = APIRouter(tags=["search"])


class TextQuery(BaseModel):
    query: str = Field(min_length=1, max_length=1000)
    limit: int = Field(default=10, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=1000)
    filters: MetadataFilters = Field(default_factory=MetadataFilters)
    collapse_duplicates: bool = Field(default=False, description="one result per near-duplicate group")
    modes: list[Literal["visual", "text"]] = Field(
        default=["visual", "text"],
        min_length=1,
        max_length=2,
        description="what is seen (CLIP) and/or what is written on screen (OCR), fused by reciprocal rank",
    )
    has_text: bool | None = Field(default=None, description="only segments with (true) or without words on screen")


class Results(BaseModel):
    results: list[dict[str, Any]]
    limit: int
    offset: int
    match_threshold: float | None = Field(description='the served model\'s "no good match" threshold, if known')
    good_match: bool | None = Field(description="false: even the best result is below the threshold")


def _results(hits: Hits, limit: int, offset: int) -> Results:
    return Results(**hits_to_json(hits), limit=limit, offset=offset)


@dataclass(frozen=True)
class UploadQuery:
    """The form fields an image or video query carries besides its file."""

    filters: str
    limit: int
    offset: int
    collapse: bool


def upload_query(
    filters: Annotated[str, Form(description="MetadataFilters as JSON")] = "{}",
    limit: Annotated[int, Form(ge=1, le=100)] = 10,
    offset: Annotated[int, Form(ge=0, le=1000)] = 0,
    collapse_duplicates: Annotated[bool, Form(description="one result per near-duplicate group")] = False,
) -> UploadQuery:
    return UploadQuery(filters, limit, offset, collapse_duplicates)


UploadForm = Annotated[UploadQuery, Depends(upload_query)]


async def _by_upload(
    search: Callable[..., Hits], upload: UploadFile, max_bytes: int, tenant: str, form: UploadQuery
) -> Results:
    """Decoding and embedding run off the event loop, so health checks and other requests keep answering."""
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLarge(f"upload larger than {max_bytes} bytes")
    if not data:
        raise InvalidRequest("empty upload")
    scoped = parse_filters(form.filters).scoped(tenant)
    hits = await run_in_threadpool(search, data, form.limit, scoped, form.offset, form.collapse)
    return _results(hits, form.limit, form.offset)


@router.post("/v1/search/text", response_model=Results)
def search_text(body: TextQuery, tenant: Tenant, engine: Engine) -> Results:
    scoped = body.filters.scoped(tenant)
    hits = engine.by_text(
        body.query, body.limit, scoped, body.offset, body.collapse_duplicates, body.modes, body.has_text
    )
    return _results(hits, body.limit, body.offset)


@router.post("/v1/search/image", response_model=Results)
async def search_image(
    tenant: Tenant,
    engine: Engine,
    settings: Settings,
    file: Annotated[UploadFile, File(description="JPEG/PNG/WebP image")],
    form: UploadForm,
) -> Results:
    return await _by_upload(engine.by_image, file, settings.max_upload_bytes, tenant, form)


@router.post("/v1/search/face", response_model=Results)
async def search_face(
    tenant: Tenant,
    engine: Engine,
    settings: Settings,
    file: Annotated[UploadFile, File(description="an image with a face (the largest is looked for)")],
    form: UploadForm,
) -> Results:
    if form.collapse:
        raise InvalidRequest("collapse_duplicates does not apply to a face search")

    def by_face(data: bytes, limit: int, scoped: Filters, offset: int, collapse: bool) -> Hits:
        return engine.by_face(data, limit, scoped, offset)

    return await _by_upload(by_face, file, settings.max_upload_bytes, tenant, form)


@router.post("/v1/search/video", response_model=Results)
async def search_video(
    tenant: Tenant,
    engine: Engine,
    settings: Settings,
    file: Annotated[UploadFile, File(description="a video or an excerpt of one")],
    form: UploadForm,
) -> Results:
    return await _by_upload(engine.by_video, file, settings.max_upload_bytes, tenant, form)


@router.get("/v1/videos/{video_id}/similar", response_model=Results)
def similar(
    video_id: VideoId,
    tenant: Tenant,
    engine: Engine,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    offset: Annotated[int, Query(ge=0, le=1000)] = 0,
    collapse_duplicates: Annotated[bool, Query(description="one result per near-duplicate group")] = False,
) -> Results:
    hits = engine.similar(video_id, limit, Filters(tenant=tenant), offset, collapse_duplicates)
    return _results(hits, limit, offset)
