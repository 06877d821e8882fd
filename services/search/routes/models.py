"""What more than one router reads: a video id in the path, search filters sent as JSON text (a form field of
an upload, a query parameter)."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException
from fastapi import Path as PathParam
from pydantic import ValidationError

from services.common.filters import MetadataFilters

VideoId = Annotated[str, PathParam(max_length=128)]


def parse_filters(raw: str) -> MetadataFilters:
    try:
        return MetadataFilters.model_validate_json(raw or "{}")
    except ValidationError as exc:
        raise HTTPException(422, detail=exc.errors(include_url=False, include_context=False)) from exc
