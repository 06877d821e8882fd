"""Curation runs over HTTP: start one over the tenant's segments, follow it, fetch its Parquet manifest."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from services.common.errors import Conflict, NotFound
from services.common.http import Tenant
from services.curation.job import CurationConfig
from services.search.deps import Engine, Runs

router = APIRouter(tags=["curation"])
RunId = Annotated[str, PathParam(max_length=64)]


class CurationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    eps: float = Field(default=0.05, gt=0, lt=1, description="drop a segment whose cosine to a kept one > 1 - eps")
    clusters: int = Field(default=0, ge=0, le=100_000, description="k-means clusters; 0: about sqrt(n / 2)")


@router.post("/v1/curation", status_code=202)
def start_curation(body: CurationRequest, tenant: Tenant, engine: Engine, runs: Runs) -> dict[str, Any]:
    """Cluster the tenant's segments, drop near-identical ones, write a Parquet manifest (`clipstream
    curate` does the same from a shell). One run at a time per replica: 409 while one is going on."""
    target = engine.router.target()
    if target is None:
        raise Conflict("nothing is indexed yet")
    config = CurationConfig(tenant=tenant, collection=target.collection, eps=body.eps, clusters=body.clusters)
    started = runs.start(config)  # Busy (a Conflict) while another run is going on
    return started.public() | {"status_url": f"/v1/curation/{started.id}"}


@router.get("/v1/curation/{run_id}")
def curation_status(run_id: RunId, tenant: Tenant, runs: Runs) -> dict[str, Any]:
    found = runs.get(run_id, tenant)
    if found is None:
        raise NotFound("no such curation run for this tenant")
    return found.public()


@router.get("/v1/curation/{run_id}/manifest")
def curation_manifest(run_id: RunId, tenant: Tenant, runs: Runs) -> FileResponse:
    found = runs.get(run_id, tenant)
    if found is None or found.state != "done":
        raise NotFound("no finished curation run with this id for this tenant")
    return FileResponse(found.manifest, media_type="application/vnd.apache.parquet", filename=found.manifest.name)
