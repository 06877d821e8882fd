"""Another tenant's upload or video does not exist for the caller: status by upload or video, takedown and
correction all answer 404, so a tenant can neither read nor change what it does not own (nor learn that it is
there). The real app and status view; the view is fed as the gateway's own registrations feed it, and Kafka is
not there, so a route that wrongly got past the ownership check would answer 503 trying to publish."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.common.kafka.publisher import Publisher
from services.common.messages import VideoStatus, VideoUploaded
from services.common.settings import CommonSettings
from services.gateway.api import create_app
from services.gateway.settings import GatewaySettings
from services.gateway.status_view import StatusView

A, B = {"Authorization": "Bearer ka"}, {"Authorization": "Bearer kb"}  # tenants ta and tb


@pytest.fixture
def view(tmp_path: Path) -> StatusView:
    return StatusView(CommonSettings(home=tmp_path, kafka_bootstrap="127.0.0.1:9"), sync_timeout_s=0.1)


@pytest.fixture
def client(tmp_path: Path, view: StatusView) -> Iterator[TestClient]:
    common = CommonSettings(home=tmp_path, kafka_bootstrap="127.0.0.1:9", kafka_call_timeout_s=1.0)
    publisher = Publisher(common, "gateway")
    try:
        yield TestClient(create_app(GatewaySettings(common=common, api_keys={"ka": "ta", "kb": "tb"}), publisher, view))
    finally:
        publisher.close()


def _upload(view: StatusView, tenant: str, video_id: str) -> VideoUploaded:
    upload = VideoUploaded(video_id=video_id, uri=f"file:///{video_id}.mp4", tenant=tenant)
    view.note(upload)
    return upload


def test_another_tenants_upload_and_video_are_not_found(client: TestClient, view: StatusView) -> None:
    upload = _upload(view, "ta", "v1")
    for path in (f"/v1/uploads/{upload.event_id}", "/v1/videos/v1/status"):
        mine = client.get(path, headers=A)
        assert mine.status_code == 200 and mine.json()["video_id"] == "v1", mine.text
        theirs = client.get(path, headers=B)
        assert theirs.status_code == 404, theirs.text


def test_another_tenant_cannot_take_down_or_correct_a_video(client: TestClient, view: StatusView) -> None:
    _upload(view, "ta", "v1")
    assert client.delete("/v1/videos/v1", headers=B).status_code == 404
    assert client.patch("/v1/videos/v1", json={"title": "mine now"}, headers=B).status_code == 404


def test_the_owner_gets_past_the_ownership_check(client: TestClient, view: StatusView) -> None:
    """The control: the same request from the owner is judged on the video (deleted: 409), not refused as 404."""
    upload = _upload(view, "ta", "v2")
    view.apply(VideoStatus(event_id=upload.event_id, video_id="v2", tenant="ta", stage="deleted"))
    assert client.patch("/v1/videos/v2", json={"title": "t"}, headers=A).status_code == 409
    assert client.patch("/v1/videos/v2", json={"title": "t"}, headers=B).status_code == 404
