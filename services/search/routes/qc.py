"""Quality control on demand: the QC stage's checks for one video, and the outliers of a cohort."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Base64Bytes, BaseModel, ConfigDict, Field

from services.common.errors import TooLarge
from services.common.http import Tenant
from services.search.deps import Engine, Settings
from services.search.routes.models import parse_filters

router = APIRouter(tags=["qc"])


class QcRequest(BaseModel):
    """One indexed video checked against this prompt and these references; with neither, against the prompt
    and references in the video's metadata."""

    model_config = ConfigDict(extra="forbid")

    video_id: str = Field(max_length=128)
    prompt: str | None = Field(default=None, max_length=1000, description="what the video was asked to show")
    references: list[Base64Bytes] = Field(
        default_factory=list, max_length=64, description="style reference images (base64 JPEG/PNG/WebP)"
    )
    reference_video_ids: list[str] = Field(default_factory=list, max_length=64, description="indexed videos")


@router.post("/v1/qc")
def quality_check(body: QcRequest, tenant: Tenant, engine: Engine, settings: Settings) -> dict[str, Any]:
    """The QC stage's checks for one video, on demand: prompt alignment per segment, deviation from the
    references' style, sudden jumps; flags carry the offending time ranges."""
    limit = settings.quality.max_reference_bytes
    for i, image in enumerate(body.references):
        if len(image) > limit:
            raise TooLarge(f"reference {i} is {len(image)} bytes, at most {limit}")
    return dict(engine.qc(tenant, body.video_id, body.prompt, body.references, body.reference_video_ids))


@router.get("/v1/qc/outliers")
def quality_outliers(
    tenant: Tenant,
    engine: Engine,
    filters: Annotated[
        str, Query(max_length=8192, description='the cohort, as search filters: {"metadata": {"campaign": "x"}}')
    ] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    z: Annotated[float | None, Query(gt=0, le=100, description="robust z threshold")] = None,
) -> dict[str, Any]:
    """Videos far from their cohort's centroid (robust z-score of the distance), farthest first."""
    return dict(engine.qc_outliers(parse_filters(filters).scoped(tenant), limit, z))
