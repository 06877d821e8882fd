"""The search service's HTTP API (FastAPI; OpenAPI at /openapi.json, docs at /docs) and web page.

Every request carries an API key (`Authorization: Bearer KEY` or `X-API-Key: KEY`); the key decides the
tenant, and the tenant is forced into every filter, so a tenant only ever sees its own videos.
"""

import logging
import mimetypes
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Header, HTTPException, Query, UploadFile
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Base64Bytes, BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.common.errors import ClipstreamError, TransientError
from services.common.filters import Filters, MetadataFilters
from services.common.http import ApiKeys, KeyGuard
from services.common.kafka.publisher import Publisher
from services.common.messages import QC_PROMPT_KEY, Topics, VideoUploaded, video_id_for
from services.common.telemetry import export_readiness
from services.curation.job import CurationConfig
from services.media.errors import DecodeError
from services.media.sources import admit, playable
from services.search.cache import LOOKUPS, SECONDS_SAVED, CacheEntry, Generation
from services.search.curation_jobs import Busy, CurationRuns
from services.search.engine import NotFound, QueryError, SearchEngine, hits_to_json, video_results
from services.search.playback import BadLink, Links
from services.search.recommend import Example
from services.search.settings import SearchSettings

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"


class TextQuery(BaseModel):
    query: str = Field(min_length=1, max_length=1000)
    limit: int = Field(default=10, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=1000)
    filters: MetadataFilters = Field(default_factory=MetadataFilters)
    collapse_duplicates: bool = Field(default=False, description="one result per near-duplicate group")


class ExampleIn(BaseModel):
    """One example: an indexed video, a text, or an image (base64, JPEG/PNG/WebP)."""

    model_config = ConfigDict(extra="forbid")

    video_id: str | None = Field(default=None, max_length=128)
    text: str | None = Field(default=None, min_length=1, max_length=1000)
    image: Base64Bytes | None = Field(default=None, description="base64 image bytes")

    @model_validator(mode="after")
    def _exactly_one(self) -> "ExampleIn":
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


class CurationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    eps: float = Field(default=0.05, gt=0, lt=1, description="drop a segment whose cosine to a kept one > 1 - eps")
    clusters: int = Field(default=0, ge=0, le=100_000, description="k-means clusters; 0: about sqrt(n / 2)")


class Results(BaseModel):
    results: list[dict[str, Any]]
    limit: int
    offset: int
    match_threshold: float | None = Field(description='the served model\'s "no good match" threshold, if known')
    good_match: bool | None = Field(description="false: even the best result is below the threshold")


def create_app(settings: SearchSettings, engine: SearchEngine | None = None) -> FastAPI:
    configured = dict(settings.api_keys)
    if not configured:
        path = settings.common.home / "search-api-key"
        configured[settings.common.local_api_key()] = "default"
        log.warning("no API keys configured: using the generated key for tenant 'default'", extra={"path": str(path)})
    keys = ApiKeys(configured)
    # the key and the body size are checked before FastAPI reads (and spools) a multipart body; the
    # form's other fields add a little to the file's bytes
    app = FastAPI(
        title="clipstream search",
        version="1",
        description=__doc__,
        max_body_size=settings.max_upload_bytes + 64 * 1024,
    )
    app.add_middleware(KeyGuard, keys=keys)
    state: dict[str, SearchEngine] = {}

    def get_engine() -> SearchEngine:
        if "engine" not in state:
            state["engine"] = engine or SearchEngine(settings)
        return state["engine"]

    def tenant_of(
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> str:
        tenant = keys.tenant(authorization, x_api_key)
        if tenant is None:
            raise HTTPException(401, detail="missing or unknown API key", headers={"WWW-Authenticate": "Bearer"})
        return tenant

    Tenant = Annotated[str, Depends(tenant_of)]
    Engine = Annotated[SearchEngine, Depends(get_engine)]

    def parse_filters(raw: str) -> MetadataFilters:
        try:
            return MetadataFilters.model_validate_json(raw or "{}")
        except ValidationError as exc:
            raise HTTPException(422, detail=exc.errors(include_url=False, include_context=False)) from exc

    async def read_upload(upload: UploadFile) -> bytes:
        data = await upload.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise HTTPException(413, detail=f"upload larger than {settings.max_upload_bytes} bytes")
        if not data:
            raise HTTPException(400, detail="empty upload")
        return data

    def run(call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except QueryError as exc:
            raise HTTPException(400, detail=str(exc)) from exc
        except NotFound as exc:
            raise HTTPException(404, detail=f"no video {exc.detail!r}") from exc
        except TransientError as exc:
            raise HTTPException(503, detail=f"{exc.reason}: try again shortly", headers={"Retry-After": "2"}) from exc
        except ClipstreamError as exc:  # the service's own state (e.g. model_mismatch): not the caller's fault
            raise HTTPException(503, detail=f"{exc.reason}: {exc.detail}") from exc

    async def run_blocking(call: Any, *args: Any) -> Any:
        """Decoding and embedding off the event loop, so health checks and other requests keep answering."""
        return await run_in_threadpool(run, call, *args)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/config", include_in_schema=False)
    def config() -> dict[str, str]:
        """What the page needs besides this API: where the upload gateway answers."""
        return {"gateway_url": settings.gateway_url}

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    def not_ready(engine: SearchEngine) -> list[str]:
        return [name for name, ok in (("triton", engine.clip.ready()), ("milvus", engine.store.ready())) if not ok]

    export_readiness("search", lambda: not not_ready(get_engine()))

    @app.get("/readyz", include_in_schema=False)
    def readyz(engine: Engine) -> PlainTextResponse:
        problems = not_ready(engine)
        if problems:
            return PlainTextResponse(f"not ready: {', '.join(problems)}", status_code=503)
        return PlainTextResponse("ready")

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/search/text", response_model=Results)
    def search_text(body: TextQuery, tenant: Tenant, engine: Engine) -> Results:
        scoped = body.filters.scoped(tenant)
        hits = run(engine.by_text, body.query, body.limit, scoped, body.offset, body.collapse_duplicates)
        return Results(**hits_to_json(hits), limit=body.limit, offset=body.offset)

    @app.post("/v1/search/image", response_model=Results)
    async def search_image(
        tenant: Tenant,
        engine: Engine,
        file: Annotated[UploadFile, File(description="JPEG/PNG/WebP image")],
        filters: Annotated[str, Form(description="MetadataFilters as JSON")] = "{}",
        limit: Annotated[int, Form(ge=1, le=100)] = 10,
        offset: Annotated[int, Form(ge=0, le=1000)] = 0,
        collapse_duplicates: Annotated[bool, Form(description="one result per near-duplicate group")] = False,
    ) -> Results:
        data = await read_upload(file)
        scoped = parse_filters(filters).scoped(tenant)
        hits = await run_blocking(engine.by_image, data, limit, scoped, offset, collapse_duplicates)
        return Results(**hits_to_json(hits), limit=limit, offset=offset)

    @app.post("/v1/search/video", response_model=Results)
    async def search_video(
        tenant: Tenant,
        engine: Engine,
        file: Annotated[UploadFile, File(description="a video or an excerpt of one")],
        filters: Annotated[str, Form(description="MetadataFilters as JSON")] = "{}",
        limit: Annotated[int, Form(ge=1, le=100)] = 10,
        offset: Annotated[int, Form(ge=0, le=1000)] = 0,
        collapse_duplicates: Annotated[bool, Form(description="one result per near-duplicate group")] = False,
    ) -> Results:
        data = await read_upload(file)
        scoped = parse_filters(filters).scoped(tenant)
        hits = await run_blocking(engine.by_video, data, limit, scoped, offset, collapse_duplicates)
        return Results(**hits_to_json(hits), limit=limit, offset=offset)

    @app.get("/v1/videos/{video_id}")
    def get_video(
        video_id: Annotated[str, PathParam(max_length=128)], tenant: Tenant, engine: Engine
    ) -> dict[str, Any]:
        video, segments = run(engine.video, video_id, Filters(tenant=tenant))
        return {
            "video": {k: v for k, v in video.items() if k != "thumb"},
            "segments": [
                {k: s[k] for k in ("segment_index", "start_s", "end_s", "keyframe_s")}
                | {"thumbnail": f"data:image/jpeg;base64,{s['thumb']}" if s.get("thumb") else None}
                for s in segments
            ],
        }

    @app.get("/v1/videos/{video_id}/similar", response_model=Results)
    def similar(
        video_id: Annotated[str, PathParam(max_length=128)],
        tenant: Tenant,
        engine: Engine,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
        offset: Annotated[int, Query(ge=0, le=1000)] = 0,
        collapse_duplicates: Annotated[bool, Query(description="one result per near-duplicate group")] = False,
    ) -> Results:
        hits = run(engine.similar, video_id, limit, Filters(tenant=tenant), offset, collapse_duplicates)
        return Results(**hits_to_json(hits), limit=limit, offset=offset)

    publisher: dict[str, Publisher] = {}

    @app.post("/v1/cache/entries", status_code=202)
    def cache_entry(body: CacheEntry, tenant: Tenant, engine: Engine) -> dict[str, Any]:
        """Register a generated video with its request and cost: it goes through the normal pipeline and
        becomes a hit once indexed."""
        try:
            admit(body.uri, media_policy)
        except DecodeError as exc:
            raise HTTPException(422, detail=f"{exc.reason}: {exc.detail}") from exc
        metadata: dict[str, str | bool] = {"generator": body.request.generator, "cached_generation": True}
        if len(body.request.prompt) <= 512:  # the QC stage checks it against its prompt (metadata strings: 512)
            metadata[QC_PROMPT_KEY] = body.request.prompt
        upload = VideoUploaded(
            video_id=video_id_for(tenant, body.uri),
            uri=body.uri,
            tenant=tenant,
            creator=body.creator,
            title=body.request.prompt[:1024],
            metadata=dict(metadata),
        )
        entry_id = run(engine.cache_put, tenant, body, upload.video_id)
        if "p" not in publisher:
            publisher["p"] = Publisher(settings.common, "search")
        publisher["p"].publish(Topics.UPLOADED, upload)
        try:
            publisher["p"].flush(settings.common.kafka_call_timeout_s)
        except Exception as exc:
            engine.cache_delete(tenant, entry_id)
            raise HTTPException(503, detail=f"kafka_unavailable: {exc}", headers={"Retry-After": "2"}) from exc
        return {"entry_id": entry_id, "video_id": upload.video_id, "event_id": upload.event_id}

    @app.post("/v1/cache/lookup")
    def cache_lookup(body: Generation, tenant: Tenant, engine: Engine) -> dict[str, Any]:
        """A cached video for a generation request like this one (same exact parameters, a prompt at or
        above the model's threshold, references as close as near-duplicates when given), or a miss with the
        best score."""
        found: dict[str, Any] = run(engine.cache_lookup, tenant, body)
        LOOKUPS.labels("hit" if found["hit"] else "miss").inc()
        if found["hit"]:
            SECONDS_SAVED.inc(found["seconds_saved"])
        return found

    @app.delete("/v1/cache/entries/{entry_id}", status_code=204)
    def cache_delete(entry_id: Annotated[str, PathParam(max_length=64)], tenant: Tenant, engine: Engine) -> Response:
        """Invalidate an entry: later lookups miss it (its video stays indexed)."""
        run(engine.cache_delete, tenant, entry_id)
        return Response(status_code=204)

    @app.post("/v1/recommend")
    def recommend(body: RecommendRequest, tenant: Tenant, engine: Engine) -> dict[str, Any]:
        """Videos like the positive examples and unlike the negative ones (a Rocchio query over the
        video-level collection); several images as positives make a style query."""
        hits = run(
            engine.recommend,
            [e.example() for e in body.positive],
            [e.example() for e in body.negative],
            body.limit,
            body.filters.scoped(tenant),
            body.exclude,
        )
        return {"results": video_results(hits), "limit": body.limit}

    @app.post("/v1/qc")
    def quality_check(body: QcRequest, tenant: Tenant, engine: Engine) -> dict[str, Any]:
        """The QC stage's checks for one video, on demand: prompt alignment per segment, deviation from the
        references' style, sudden jumps; flags carry the offending time ranges."""
        limit = settings.quality.max_reference_bytes
        for i, image in enumerate(body.references):
            if len(image) > limit:
                raise HTTPException(413, detail=f"reference {i} is {len(image)} bytes, at most {limit}")
        return dict(run(engine.qc, tenant, body.video_id, body.prompt, body.references, body.reference_video_ids))

    @app.get("/v1/qc/outliers")
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
        return dict(run(engine.qc_outliers, parse_filters(filters).scoped(tenant), limit, z))

    @app.get("/v1/videos/{video_id}/duplicates")
    def duplicates(
        video_id: Annotated[str, PathParam(max_length=128)], tenant: Tenant, engine: Engine
    ) -> dict[str, Any]:
        """The near-duplicate stage's verdicts on this video (duplicate, contains, contained_in, from this
        video's side, with the matched time ranges) and its duplicate group."""
        return run(engine.duplicates, video_id, Filters(tenant=tenant))

    runs: dict[str, CurationRuns] = {}

    def curation(engine: SearchEngine) -> CurationRuns:
        if "runs" not in runs:
            runs["runs"] = CurationRuns(engine.store, settings.common.home)
        return runs["runs"]

    @app.post("/v1/curation", status_code=202)
    def start_curation(body: CurationRequest, tenant: Tenant, engine: Engine) -> dict[str, Any]:
        """Cluster the tenant's segments, drop near-identical ones, write a Parquet manifest (`clipstream
        curate` does the same from a shell). One run at a time per replica: 409 while one is going on."""
        target = engine.router.target()
        if target is None:
            raise HTTPException(409, detail="nothing is indexed yet")
        config = CurationConfig(tenant=tenant, collection=target.collection, eps=body.eps, clusters=body.clusters)
        try:
            started = curation(engine).start(config)
        except Busy as exc:
            raise HTTPException(409, detail=str(exc)) from exc
        return started.public() | {"status_url": f"/v1/curation/{started.id}"}

    @app.get("/v1/curation/{run_id}")
    def curation_status(
        run_id: Annotated[str, PathParam(max_length=64)], tenant: Tenant, engine: Engine
    ) -> dict[str, Any]:
        found = curation(engine).get(run_id, tenant)
        if found is None:
            raise HTTPException(404, detail="no such curation run for this tenant")
        return found.public()

    @app.get("/v1/curation/{run_id}/manifest")
    def curation_manifest(
        run_id: Annotated[str, PathParam(max_length=64)], tenant: Tenant, engine: Engine
    ) -> FileResponse:
        found = curation(engine).get(run_id, tenant)
        if found is None or found.state != "done":
            raise HTTPException(404, detail="no finished curation run with this id for this tenant")
        return FileResponse(found.manifest, media_type="application/vnd.apache.parquet", filename=found.manifest.name)

    secret = settings.media_secret.get_secret_value() if settings.media_secret else None
    links = Links.from_keys(configured, secret, settings.media_url_ttl_s)
    media_policy = settings.media.source_policy()

    @app.get("/v1/videos/{video_id}/play")
    def play(
        video_id: Annotated[str, PathParam(max_length=128)],
        tenant: Tenant,
        engine: Engine,
        start_s: Annotated[float, Query(ge=0)] = 0.0,
    ) -> dict[str, Any]:
        """A short-lived link a `<video>` element can play, positioned at `start_s` (a media fragment)."""
        run(engine.video, video_id, Filters(tenant=tenant))  # 404 unless the tenant's
        return {"url": f"/media/{links.sign(video_id, tenant)}#t={start_s:.2f}", "expires_in_s": links.ttl_s}

    @app.get("/media/{token}", include_in_schema=False)
    def media(token: Annotated[str, PathParam(max_length=1024)], engine: Engine) -> Response:
        """The bytes of a signed link's video: local files served with HTTP ranges, allowed http(s) sources
        and s3 objects (as presigned links) by redirect."""
        try:
            video_id, tenant = links.verify(token)
        except (BadLink, ValueError, KeyError) as exc:
            raise HTTPException(403, detail=getattr(exc, "detail", "the media link is not valid")) from exc
        video, _ = run(engine.video, video_id, Filters(tenant=tenant))
        try:
            where = playable(str(video["uri"]), media_policy, links.ttl_s)
        except DecodeError as exc:
            raise HTTPException(404, detail=f"{exc.reason}: the source cannot be served") from exc
        if isinstance(where, Path):
            media_type = mimetypes.guess_type(where.name)[0] or "application/octet-stream"
            return FileResponse(where, media_type=media_type)
        return RedirectResponse(where, status_code=307)

    return app
