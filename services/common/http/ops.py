"""What every HTTP service answers besides its API: liveness, readiness (with what is wrong), metrics.

`/metrics` is served on the API's own port, outside `/v1/` (no key): scrape it from inside the cluster (the
chart's PodMonitor) and keep it off the public ingress, which routes `/v1/` and the page only.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.common.telemetry import export_readiness


def ops_router(service: str, problems: Callable[[], list[str]]) -> APIRouter:
    """`problems()` lists what keeps the service from making progress (empty: ready)."""
    router = APIRouter(include_in_schema=False)
    export_readiness(service, lambda: not problems())

    @router.get("/healthz")
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @router.get("/readyz")
    def readyz() -> PlainTextResponse:
        found = problems()
        if found:
            return PlainTextResponse(f"not ready: {', '.join(found)}", status_code=503)
        return PlainTextResponse("ready")

    @router.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
