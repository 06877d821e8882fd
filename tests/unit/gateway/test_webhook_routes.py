"""The webhook endpoints API: tenant-scoped, secrets shown once, receiver URLs only under the allowlist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.common.http import ApiKeys, KeyGuard, install_error_handlers
from services.common.messages import Topics
from services.common.settings import CommonSettings
from services.common.webhooks import EndpointRegistry, EndpointTable, WebhookSettings
from services.gateway.deps import Parts
from services.gateway.routes import webhooks
from services.gateway.settings import GatewaySettings

A, B = {"Authorization": "Bearer ka"}, {"X-API-Key": "kb"}
ALLOWED = ["http://127.0.0.1:28471/", "https://hooks.example.com/tenant-a/"]


class LocalRegistry(EndpointRegistry):
    """The real registry, with the topic replaced by its table: a write is applied at once."""

    def __init__(self, common: CommonSettings, settings: WebhookSettings) -> None:
        self.settings = settings
        self.table = EndpointTable(common, "test")
        self.table.sync = lambda partitions=None: None  # type: ignore[method-assign]
        self._box = settings.cipher(common)

    def _write(self, key: str, value: bytes | None) -> None:
        self.table._apply(Topics.WEBHOOK_ENDPOINTS, key, value)


@pytest.fixture
def registry(tmp_path: Path) -> LocalRegistry:
    settings = WebhookSettings(secret_key=SecretStr("k" * 40), allowed_url_prefixes=ALLOWED, max_endpoints_per_tenant=3)
    return LocalRegistry(CommonSettings(home=tmp_path), settings)


@pytest.fixture
def client(registry: LocalRegistry, tmp_path: Path) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.api_keys = ApiKeys({"ka": "a", "kb": "b"})
    app.add_middleware(KeyGuard, keys=app.state.api_keys)
    install_error_handlers(app)
    app.state.parts = Parts(GatewaySettings(common=CommonSettings(home=tmp_path)), webhooks=registry)
    app.include_router(webhooks.router)
    with TestClient(app) as made:
        yield made


def _create(client: TestClient, url: str, headers: dict[str, str] = A, **body: object) -> dict:
    response = client.post("/v1/webhooks", json={"url": url, **body}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_the_secret_is_answered_once_and_stored_sealed(client: TestClient, registry: LocalRegistry) -> None:
    made = _create(client, "http://127.0.0.1:28471/hooks", event_types=["video.failed"], description="ops")
    assert made["secret"].startswith("whsec_") and made["id"].startswith("ep_")
    assert (made["event_types"], made["description"]) == (["video.failed"], "ops")
    stored = registry.table.get("a", made["id"])
    assert stored is not None and made["secret"] not in stored.secret
    assert registry._box.open(stored.secret) == made["secret"]
    for response in (client.get(f"/v1/webhooks/{made['id']}", headers=A), client.get("/v1/webhooks", headers=A)):
        assert response.status_code == 200 and "secret" not in response.text
    everything = _create(client, "http://127.0.0.1:28471/all")
    assert len(everything["event_types"]) == 5  # every type unless told


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:28472/hooks",  # another port
        "http://localhost:28471/hooks",  # another host name for the same place
        "https://127.0.0.1:28471/hooks",  # another scheme
        "http://user:pw@127.0.0.1:28471/hooks",  # userinfo
        "https://hooks.example.com/tenant-ab/x",  # a path prefix that is not a whole segment
        "https://hooks.example.com/tenant-a/../tenant-b/x",
        "http://169.254.169.254/latest/meta-data/",
        "ftp://127.0.0.1:28471/hooks",
        "not a url",
    ],
)
def test_urls_outside_the_allowlist_are_422(client: TestClient, registry: LocalRegistry, url: str) -> None:
    response = client.post("/v1/webhooks", json={"url": url}, headers=A)
    assert response.status_code == 422 and response.json()["reason"] == "url_not_allowed", response.text
    assert registry.table.of_tenant("a") == []


def test_bad_bodies_are_422(client: TestClient) -> None:
    for body in (
        {"url": "http://127.0.0.1:28471/x", "event_types": []},
        {"url": "http://127.0.0.1:28471/x", "event_types": ["video.uploaded"]},
        {"url": "http://127.0.0.1:28471/x", "secret": "mine"},
        {},
    ):
        assert client.post("/v1/webhooks", json=body, headers=A).status_code == 422, body


def test_endpoints_are_the_tenants_own(client: TestClient) -> None:
    mine = _create(client, "https://hooks.example.com/tenant-a/in")
    assert client.get(f"/v1/webhooks/{mine['id']}", headers=B).status_code == 404
    assert client.delete(f"/v1/webhooks/{mine['id']}", headers=B).status_code == 404
    assert client.get("/v1/webhooks", headers=B).json() == {"items": [], "next_cursor": None}
    assert client.get("/v1/webhooks", headers={}).status_code == 401
    deleted = client.delete(f"/v1/webhooks/{mine['id']}", headers=A)
    assert deleted.status_code == 204 and deleted.content == b""
    assert client.get(f"/v1/webhooks/{mine['id']}", headers=A).status_code == 404
    assert client.delete(f"/v1/webhooks/{mine['id']}", headers=A).status_code == 404


def test_listing_pages_with_a_cursor_and_the_count_is_bounded(client: TestClient) -> None:
    made = [_create(client, f"http://127.0.0.1:28471/h{i}")["id"] for i in range(3)]
    first = client.get("/v1/webhooks", params={"limit": 2}, headers=A).json()
    assert [e["id"] for e in first["items"]] == made[:2] and first["next_cursor"] == made[1]
    rest = client.get("/v1/webhooks", params={"limit": 2, "cursor": first["next_cursor"]}, headers=A).json()
    assert [e["id"] for e in rest["items"]] == made[2:] and rest["next_cursor"] is None
    assert client.get("/v1/webhooks", params={"cursor": "nope"}, headers=A).json()["reason"] == "bad_cursor"
    over = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:28471/h4"}, headers=A)
    assert over.status_code == 409 and over.json()["reason"] == "too_many_endpoints"
    assert client.post("/v1/webhooks", json={"url": "http://127.0.0.1:28471/h4"}, headers=B).status_code == 201
