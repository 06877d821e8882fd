"""From the error tree to HTTP: one table, read top to bottom, the first family that matches answers.

A transient error (a dependency is down) is 503 with Retry-After; a permanent one is the caller's fault
(4xx) except `Misconfigured`, the service's own state (503). The body is always
`{"detail": ..., "reason": ...}`, `reason` being the machine-readable code the error carries.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.common.errors import (
    ClipstreamError,
    Conflict,
    InvalidRequest,
    Misconfigured,
    NotFound,
    PermanentError,
    TooLarge,
    TransientError,
    UnsupportedMediaType,
)

STATUS_BY_ERROR: tuple[tuple[type[ClipstreamError], int], ...] = (
    (TransientError, 503),
    (Misconfigured, 503),
    (NotFound, 404),
    (Conflict, 409),
    (TooLarge, 413),
    (UnsupportedMediaType, 415),
    (InvalidRequest, 400),
    (PermanentError, 422),
    (ClipstreamError, 500),
)
RETRY_AFTER_S = 2


def status_for(exc: ClipstreamError) -> int:
    return next(status for family, status in STATUS_BY_ERROR if isinstance(exc, family))


def install_error_handlers(app: FastAPI) -> None:
    async def clipstream_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ClipstreamError)
        status = status_for(exc)
        headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
        return JSONResponse({"detail": exc.detail, "reason": exc.reason}, status_code=status, headers=headers)

    app.add_exception_handler(ClipstreamError, clipstream_error)
