"""The gateway answers 503 with Retry-After when what it depends on is down, and publishes nothing half-done."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.common.settings import CommonSettings
from services.gateway.api import create_app
from services.gateway.settings import GatewaySettings

KEY = {"Authorization": "Bearer k"}


def _client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> TestClient:
    monkeypatch.setenv("CLIPSTREAM_DECODER_ALLOWED_ROOTS", json.dumps([str(tmp_path)]))
    common = CommonSettings(home=tmp_path, kafka_bootstrap="127.0.0.1:9", kafka_call_timeout_s=2.0)
    settings = GatewaySettings(common=common, api_keys={"k": "t"}, s3_endpoint_url="http://127.0.0.1:9")
    return TestClient(create_app(settings))


def test_kafka_down_answers_503_with_retry_after(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    client = _client(monkeypatch, tmp_path)
    for _ in range(2):  # the failed request leaves nothing queued behind it to fail or land later
        response = client.post("/v1/videos", json={"uri": clip.as_uri()}, headers=KEY)
        assert response.status_code == 503, response.text
        assert response.json()["reason"] == "kafka_unavailable" and response.headers["retry-after"]
        assert "1 undelivered" in response.json()["detail"]


def test_object_store_down_answers_503_before_anything_is_registered(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client = _client(monkeypatch, tmp_path)
    response = client.post("/v1/videos/upload", params={"filename": "a.mp4"}, content=b"bytes", headers=KEY)
    assert response.status_code == 503, response.text
    assert response.json()["reason"] == "object_store_unavailable"
