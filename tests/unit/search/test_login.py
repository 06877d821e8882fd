"""One-time login links: the token book on a real folder, and `POST /login` through the real app."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.common.settings import CommonSettings
from services.search.api import create_app
from services.search.login import LoginBook, LoginRefused, login_folder
from services.search.settings import SearchSettings

LOOPBACK = ("127.0.0.1", 50000)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(1_000_000.0)


@pytest.fixture
def book(tmp_path: Path, clock: Clock) -> LoginBook:
    return LoginBook(tmp_path / "login", ttl_s=300, clock=clock)


def test_a_token_signs_in_once(book: LoginBook) -> None:
    token = book.issue("tenant-a")
    assert book.redeem(token) == "tenant-a"
    with pytest.raises(LoginRefused, match="already used"):
        book.redeem(token)


def test_a_token_expires_at_its_deadline(book: LoginBook, clock: Clock) -> None:
    issued = clock.now
    early, late = book.issue("t"), book.issue("t")
    clock.now = issued + 299.999
    assert book.redeem(early) == "t"
    clock.now = issued + 300  # valid while now < issued + ttl
    with pytest.raises(LoginRefused, match="expired"):
        book.redeem(late)
    with pytest.raises(LoginRefused, match="already used"):  # trying an expired token uses it up too
        book.redeem(late)


@pytest.mark.parametrize("token", ["A" * 43, "../../search-api-key", "", "x" * 44])
def test_unknown_and_malformed_tokens_are_refused(book: LoginBook, token: str) -> None:
    book.issue("t")
    with pytest.raises(LoginRefused):
        book.redeem(token)


def test_the_folder_holds_no_usable_token_and_only_its_owner_reads_it(book: LoginBook) -> None:
    token = book.issue("t")
    files = list(book.folder.iterdir())
    assert len(files) == 1 and token not in files[0].name and token not in files[0].read_text()
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(book.folder.stat().st_mode) == 0o700


def test_expired_tokens_nobody_used_are_swept(book: LoginBook, clock: Clock) -> None:
    book.issue("t")
    clock.now += 301
    kept = book.issue("t")
    assert len(list(book.folder.glob("*.json"))) == 1
    assert book.redeem(kept) == "t"


def test_two_tabs_racing_with_one_link_sign_in_once(book: LoginBook) -> None:
    for _ in range(30):
        token = book.issue("t")
        start = threading.Barrier(4)
        won: list[str] = []
        lost: list[str] = []

        def tab(
            token: str = token, start: threading.Barrier = start, won: list[str] = won, lost: list[str] = lost
        ) -> None:
            start.wait()
            try:
                won.append(book.redeem(token))
            except LoginRefused:
                lost.append(token)

        tabs = [threading.Thread(target=tab) for _ in range(4)]
        for t in tabs:
            t.start()
        for t in tabs:
            t.join()
        assert (len(won), len(lost)) == (1, 3)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def app_client(home: Path) -> TestClient:
    settings = SearchSettings(common=CommonSettings(home=home), api_keys={"ka": "ta", "kb": "tb", "kb2": "tb"})
    return TestClient(create_app(settings), client=LOOPBACK)


def _issue(home: Path, tenant: str, clock: Clock | None = None) -> str:
    return LoginBook(login_folder(home), clock=clock or Clock(time.time())).issue(tenant)


def test_the_route_answers_the_tenants_key_once(app_client: TestClient, home: Path) -> None:
    token = _issue(home, "tb")
    first = app_client.post("/login", json={"token": token})  # no API key: the token is the credential
    assert first.status_code == 200, first.text
    assert first.json() == {"tenant": "tb", "api_key": "kb"}
    assert first.headers["cache-control"] == "no-store"
    again = app_client.post("/login", json={"token": token})
    assert again.status_code == 401 and "already used" in again.json()["detail"]
    assert "clipstream login" in again.json()["detail"]


def test_the_route_refuses_expired_and_unknown_tokens(app_client: TestClient, home: Path) -> None:
    stale = _issue(home, "ta", Clock(time.time() - 301))
    expired = app_client.post("/login", json={"token": stale})
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    unknown = app_client.post("/login", json={"token": "B" * 43})
    assert unknown.status_code == 401
    assert app_client.post("/login", json={}).status_code == 422


def test_a_tenant_without_a_key_gets_none(app_client: TestClient, home: Path) -> None:
    answer = app_client.post("/login", json={"token": _issue(home, "tc")})
    assert answer.status_code == 401 and "no API key for tenant 'tc'" in answer.json()["detail"]


def test_only_loopback_clients_may_redeem(home: Path, app_client: TestClient) -> None:
    token = _issue(home, "ta")
    remote = TestClient(app_client.app, client=("203.0.113.7", 50000))
    refused = remote.post("/login", json={"token": token})
    assert refused.status_code == 403
    assert app_client.post("/login", json={"token": token}).json()["api_key"] == "ka"  # not used up by the refusal
