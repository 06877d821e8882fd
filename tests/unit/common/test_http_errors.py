"""The one table from the error tree to HTTP statuses: the first family that matches answers, so a more
specific family must come before its base (a Misconfigured is a PermanentError, yet not the caller's fault)."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

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
from services.common.http import install_error_handlers, status_for
from services.common.kafka.publisher import NotDelivered


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (TransientError("down"), 503),
        (NotDelivered("no report", maybe=True), 503),
        (Misconfigured("model mismatch"), 503),
        (NotFound("nope"), 404),
        (Conflict("deleted"), 409),
        (TooLarge("big"), 413),
        (UnsupportedMediaType("json"), 415),
        (InvalidRequest("bad image"), 400),
        (PermanentError("bad tags"), 422),
        (ClipstreamError("odd"), 500),
    ],
)
def test_each_family_answers_its_status(error: ClipstreamError, status: int) -> None:
    assert status_for(error) == status


def test_the_body_carries_the_reason_and_503_says_when_to_retry() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/down")
    def down() -> None:
        raise NotDelivered("no delivery report within 2 s")

    @app.get("/gone")
    def gone() -> None:
        raise NotFound("no such upload for this tenant")

    client = TestClient(app)
    answer = client.get("/down")
    assert answer.status_code == 503 and answer.headers["retry-after"]
    assert answer.json() == {"detail": "no delivery report within 2 s", "reason": "kafka_unavailable"}
    answer = client.get("/gone")
    assert answer.status_code == 404 and "retry-after" not in answer.headers
    assert answer.json()["reason"] == "not_found"
