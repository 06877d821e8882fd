"""The gateway answers 503 with Retry-After when what it depends on is down, and publishes nothing half-done."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.common.kafka.publisher import Publisher
from services.common.settings import CommonSettings
from services.gateway.api import create_app
from services.gateway.settings import GatewaySettings

KEY = {"Authorization": "Bearer k"}


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TestClient]:
    """The real app against a Kafka and an object store that are not there (port 9 refuses)."""
    monkeypatch.setenv("CLIPSTREAM_DECODER_ALLOWED_ROOTS", json.dumps([str(tmp_path)]))
    common = CommonSettings(home=tmp_path, kafka_bootstrap="127.0.0.1:9", kafka_call_timeout_s=2.0)
    settings = GatewaySettings(common=common, api_keys={"k": "t"}, s3_endpoint_url="http://127.0.0.1:9")
    publisher = Publisher(common, "gateway")
    try:
        yield TestClient(create_app(settings, publisher=publisher))
    finally:
        publisher.close()  # no reconnect attempts left running through the rest of the session


def test_kafka_down_answers_503_with_retry_after(client: TestClient, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    for _ in range(2):  # each request answers from its own message's delivery, not from the one before
        response = client.post("/v1/videos", json={"uri": clip.as_uri()}, headers=KEY)
        assert response.status_code == 503, response.text
        assert response.json()["reason"] == "kafka_unavailable" and response.headers["retry-after"]
        assert "no delivery report within 2 s" in response.json()["detail"]


def test_object_store_down_answers_503_before_anything_is_registered(client: TestClient) -> None:
    response = client.post("/v1/videos/upload", params={"filename": "a.mp4"}, content=b"bytes", headers=KEY)
    assert response.status_code == 503, response.text
    assert response.json()["reason"] == "object_store_unavailable"
