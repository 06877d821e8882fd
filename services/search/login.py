"""One-time login links for the local stack's page, so a newcomer never copies an API key out of a file.

`clipstream login` (and the demo) issue a token into the state folder the CLI and the local search service
share, and print `http://127.0.0.1:PORT/#login=TOKEN`: a fragment, which browsers never send to a server, so
the token stays out of access logs, proxies and Referer headers, and the key itself is never in a URL. The
page posts the token to `POST /login`, which redeems it once for the tenant's API key.

- Tokens are 256-bit random; the file is named by the token's SHA-256, so the folder holds no usable token.
- Redeeming renames the file to a name only this call knows before reading it: of two tabs racing with one
  link, exactly one rename succeeds.
- A token expires `ttl_s` after it was issued (valid while now < expiry) and is gone once tried, even when
  expired.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

TOKEN_BYTES = 32
DEFAULT_TTL_S = 300.0
_WELL_FORMED = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32)


class LoginRefused(Exception):
    """The link cannot sign anyone in (a 401): `detail` says why, for the page to show."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class Login:
    tenant: str
    api_key: str


def _name(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class LoginBook:
    """The tokens waiting in `folder` (`<CLIPSTREAM_HOME>/login`): issued by the CLI, redeemed by search."""

    folder: Path
    ttl_s: float = DEFAULT_TTL_S
    clock: Callable[[], float] = field(default=time.time, compare=False)

    def issue(self, tenant: str) -> str:
        """A new token for `tenant`, written atomically (a reader never sees half a file); expired tokens
        left behind by links nobody opened are swept on the way."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._sweep()
        token = secrets.token_urlsafe(TOKEN_BYTES)
        body = json.dumps({"tenant": tenant, "expires_at": self.clock() + self.ttl_s}).encode()
        partial = self.folder / f".{_name(token)}.{secrets.token_hex(8)}.part"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(body)
        os.rename(partial, self.folder / f"{_name(token)}.json")
        return token

    def redeem(self, token: str) -> str:
        """The tenant the token was issued for; the token is used up whatever the outcome."""
        if not _WELL_FORMED.fullmatch(token):
            raise LoginRefused("unknown login link")
        path = self.folder / f"{_name(token)}.json"
        claimed = self.folder / f".{_name(token)}.{secrets.token_hex(8)}.claimed"
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            raise LoginRefused("this login link was already used or is unknown") from None
        try:
            found = json.loads(claimed.read_bytes())
        finally:
            claimed.unlink(missing_ok=True)
        if self.clock() >= float(found["expires_at"]):
            raise LoginRefused("this login link has expired")
        return str(found["tenant"])

    def _sweep(self) -> None:
        now = self.clock()
        for path in self.folder.glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                if now >= float(json.loads(path.read_bytes())["expires_at"]):
                    path.unlink()


class LoginDesk:
    """Redeems a token for the API key of its tenant among the service's configured keys."""

    def __init__(self, book: LoginBook, keys: Mapping[str, str]) -> None:
        self.book = book
        self._key_of: dict[str, str] = {}
        for key, tenant in keys.items():
            self._key_of.setdefault(tenant, key)

    def redeem(self, token: str) -> Login:
        tenant = self.book.redeem(token)
        key = self._key_of.get(tenant)
        if key is None:
            raise LoginRefused(f"the search service has no API key for tenant {tenant!r}")
        return Login(tenant, key)


def login_folder(home: Path) -> Path:
    """Where tokens wait: in the state folder the CLI and the local stack's search service share."""
    return home.resolve() / "login"


def login_link(host: str, port: int, token: str) -> str:
    return f"http://{host}:{port}/#login={token}"
