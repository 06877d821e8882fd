"""`GET /v1/videos`, the page's view before any query, through the real app: the tenant is the key's, pages
follow one another with the cursor. The engine stands in for Milvus with a list, ordered and paged by the
same `listing` code the store uses (the store's own part runs on both backends in tests/store_contract.py)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.common.settings import CommonSettings
from services.common.vectors import Cursor
from services.common.vectors.listing import newest_first
from services.search.api import create_app
from services.search.settings import SearchSettings

A, B = {"Authorization": "Bearer ka"}, {"X-API-Key": "kb"}


class Catalogue:
    """Video rows of several tenants, listed like the store lists them."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def latest(self, tenant: str, limit: int = 24, after: Cursor | None = None) -> tuple[list[dict[str, Any]], Any]:
        mine = [r for r in self.rows if r["tenant"] == tenant and (after is None or Cursor.of(r) < after)]
        page = newest_first(mine, limit)
        return page, Cursor.of(page[-1]) if len(mine) > len(page) else None


def _row(video_id: str, tenant: str, uploaded_at: int) -> dict[str, Any]:
    thumb = base64.b64encode(b"\xff\xd8" + video_id.encode()).decode()
    return {
        "video_id": video_id,
        "tenant": tenant,
        "title": f"title of {video_id}",
        "uploaded_at": uploaded_at,
        "duration_s": 8.0,
        "tag0": "beach",
        "tag1": "",
        "metadata": {"lang": "en"},
        "thumb": thumb,
    }


ROWS = [_row(f"a{i}", "ta", 1000 + i // 2) for i in range(7)] + [_row(f"b{i}", "tb", 5000 + i) for i in range(3)]


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    settings = SearchSettings(common=CommonSettings(home=tmp_path), api_keys={"ka": "ta", "kb": "tb"})
    return TestClient(create_app(settings, engine=Catalogue(ROWS)))  # type: ignore[arg-type]


def test_pages_list_the_keys_tenant_newest_first(client: TestClient) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(len(ROWS)):  # a cursor that does not move would page forever
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/videos", params=params, headers=A)
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["limit"] == 3 and len(body["videos"]) <= 3
        seen += [v["video_id"] for v in body["videos"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert cursor is None
    assert seen == ["a6", "a5", "a4", "a3", "a2", "a1", "a0"]  # upload time, then the id, descending


def test_a_listed_video_carries_what_a_card_shows(client: TestClient) -> None:
    first = client.get("/v1/videos", params={"limit": 1}, headers=B).json()["videos"][0]
    assert first["video_id"] == "b2" and first["title"] == "title of b2" and first["uploaded_at"] == 5002
    assert first["tags"] == ["beach"] and first["metadata"] == {"lang": "en"}
    assert first["thumbnail"] == "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8b2").decode()
    assert "thumb" not in first and "tenant" not in first


def test_the_tenant_comes_from_the_key_never_the_request(client: TestClient) -> None:
    for params in ({"tenant": "tb"}, {"filters": '{"tenant": "tb"}'}):
        listed = client.get("/v1/videos", params=params, headers=A).json()["videos"]
        assert listed and {v["video_id"][0] for v in listed} == {"a"}, params
    assert client.get("/v1/videos").status_code == 401
    assert client.get("/v1/videos", headers={"X-API-Key": "nope"}).status_code == 401


def test_a_cursor_from_another_tenant_leaks_nothing(client: TestClient) -> None:
    cursor = Cursor(9999, "zzz").encode()  # after everything: the key's tenant's page, not another's
    listed = client.get("/v1/videos", params={"cursor": cursor}, headers=A).json()["videos"]
    assert {v["video_id"][0] for v in listed} == {"a"}


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not base64!"},
        {"cursor": base64.urlsafe_b64encode(b'["x", 1]').decode()},
        {"limit": 0},
        {"limit": 101},
    ],
)
def test_bad_cursors_and_limits_are_refused(client: TestClient, params: dict[str, Any]) -> None:
    answer = client.get("/v1/videos", params=params, headers=A)
    assert answer.status_code in (400, 422), answer.text
