"""A running reindex over HTTP, on loopback beside the CLI that runs it: progress, pause/resume, flow control.

`GET /v1/reindex` (done/total, rate, ETA, state), `POST /v1/reindex/pause`, `POST /v1/reindex/resume`,
`PUT /v1/reindex/control` (`{"rate": videos a second, "in_flight": n}`), `/metrics` (the same numbers as
gauges). One process runs one reindex, so the routes need no run id.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from prometheus_client import Gauge, make_asgi_app
from pydantic import BaseModel, Field

from services.indexer.reindex import Control, Reindex

VIDEOS = Gauge("clipstream_reindex_videos", "The running reindex's videos by state", ["state"])
RATE = Gauge("clipstream_reindex_videos_per_second", "Videos the running reindex indexed a second (last minute)")


class ControlBody(BaseModel):
    rate: float = Field(default=0.0, ge=0, description="videos published a second at most; 0: unlimited")
    in_flight: int = Field(default=64, ge=1, le=100_000, description="published and not yet indexed, at most")


router = APIRouter(prefix="/v1/reindex")


def _run(request: Request) -> Reindex:
    run: Reindex = request.app.state.reindex
    return run


@router.get("")
def progress(request: Request) -> dict[str, Any]:
    return asdict(_run(request).progress())


@router.post("/pause")
def pause(request: Request) -> dict[str, Any]:
    _run(request).pause()
    return asdict(_run(request).progress())


@router.post("/resume")
def resume(request: Request) -> dict[str, Any]:
    _run(request).resume()
    return asdict(_run(request).progress())


@router.put("/control")
def control(request: Request, body: ControlBody) -> dict[str, Any]:
    _run(request).set_control(Control(rate=body.rate, in_flight=body.in_flight))
    return asdict(_run(request).control)


def create_app(run: Reindex) -> FastAPI:
    app = FastAPI(title="clipstream reindex", docs_url=None, redoc_url=None)
    app.state.reindex = run
    app.include_router(router)
    metrics = make_asgi_app()

    @app.middleware("http")
    async def refresh_gauges(request: Request, call_next: Any) -> Any:
        if request.url.path.startswith("/metrics"):
            now = run.progress()
            for state in ("total", "done", "failed", "in_flight", "published"):
                VIDEOS.labels(state).set(getattr(now, state))
            RATE.set(now.rate_per_s)
        return await call_next(request)

    app.mount("/metrics", metrics)
    return app


class ReindexServer:
    """uvicorn in a daemon thread, on 127.0.0.1 unless told otherwise (port 0: any free port)."""

    def __init__(self, run: Reindex, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(create_app(run), host=host, port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="reindex-http", daemon=True)

    def start(self) -> ReindexServer:
        self._thread.start()
        while not self._server.started and self._thread.is_alive():
            threading.Event().wait(0.05)
        return self

    @property
    def port(self) -> int:
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
