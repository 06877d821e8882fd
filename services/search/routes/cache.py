"""The generation cache: register a generated video with its request and cost, look a request up, invalidate
an entry. Lookups and entries are the tenant's own."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from fastapi import Path as PathParam

from services.common.http import Tenant
from services.common.messages import QC_PROMPT_KEY, video_id_for
from services.intake.models import Registration
from services.intake.registrar import Registrar
from services.search.cache import LOOKUPS, SECONDS_SAVED, CacheEntry, Generation
from services.search.deps import Engine, Registrations
from services.search.engine import SearchEngine

router = APIRouter(tags=["cache"])


def _register_generated(body: CacheEntry, tenant: str, engine: SearchEngine, registrar: Registrar) -> dict[str, Any]:
    """The entry, and the video's registration through the one registration step (`videos.uploaded`), which
    makes it a hit once indexed. A source the decoder would refuse is 422 with the decoder's reason; an entry
    whose registration did not reach Kafka is deleted again (503)."""
    metadata: dict[str, str | bool] = {"generator": body.request.generator, "cached_generation": True}
    if len(body.request.prompt) <= 512:  # the QC stage checks it against its prompt (metadata strings: 512)
        metadata[QC_PROMPT_KEY] = body.request.prompt
    title = body.request.prompt.encode()[:1024].decode(errors="ignore")  # the title is 1,024 UTF-8 bytes
    registration = Registration(uri=body.uri, creator=body.creator, title=title, metadata=dict(metadata))
    entry_id = engine.cache_put(tenant, body, video_id_for(tenant, body.uri))
    try:
        _, upload = registrar.register(tenant, registration, None, "cache")
    except Exception:
        engine.cache_delete(tenant, entry_id)
        raise
    return {"entry_id": entry_id, "video_id": upload.video_id, "event_id": upload.event_id}


@router.post("/v1/cache/entries", status_code=202)
def cache_entry(body: CacheEntry, tenant: Tenant, engine: Engine, registrar: Registrations) -> dict[str, Any]:
    """Register a generated video with its request and cost: it goes through the normal pipeline and
    becomes a hit once indexed."""
    return _register_generated(body, tenant, engine, registrar)


@router.post("/v1/cache/lookup")
def cache_lookup(body: Generation, tenant: Tenant, engine: Engine) -> dict[str, Any]:
    """A cached video for a generation request like this one (same exact parameters, a prompt at or
    above the model's threshold, references as close as near-duplicates when given), or a miss with the
    best score."""
    found = engine.cache_lookup(tenant, body)
    LOOKUPS.labels("hit" if found["hit"] else "miss").inc()
    if found["hit"]:
        SECONDS_SAVED.inc(found["seconds_saved"])
    return found


@router.delete("/v1/cache/entries/{entry_id}", status_code=204)
def cache_delete(entry_id: Annotated[str, PathParam(max_length=64)], tenant: Tenant, engine: Engine) -> Response:
    """Invalidate an entry: later lookups miss it (its video stays indexed)."""
    engine.cache_delete(tenant, entry_id)
    return Response(status_code=204)
