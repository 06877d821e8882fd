"""The web page, and what it needs besides this API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from services.search.deps import Settings

STATIC = Path(__file__).parent.parent / "static"
router = APIRouter(include_in_schema=False)


@router.get("/")
def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/config")
def config(settings: Settings) -> dict[str, str]:
    """What the page needs besides this API: where the upload gateway answers."""
    return {"gateway_url": settings.gateway_url}
