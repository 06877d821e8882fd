"""What every HTTP service of ours puts in front of its routes: API keys → tenants, checked before the body.

FastAPI parses multipart forms (spooling uploads to disk) before it runs an endpoint's dependencies, so a
key check inside the endpoint comes too late: `KeyGuard` answers 401 from the headers alone. Body sizes are
bounded by FastAPI's own `max_body_size` (Content-Length up front, bytes received for chunked bodies).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
ASGIApp = Callable[[Scope, Receive, Send], Any]


class ApiKeys:
    """Bearer token (or `X-API-Key`) → tenant, compared in constant time."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self._keys = dict(keys)

    def tenant(self, authorization: str | None, x_api_key: str | None) -> str | None:
        token = x_api_key or (authorization or "").removeprefix("Bearer ").strip()
        found = None
        for key, tenant in self._keys.items():
            if token and secrets.compare_digest(token.encode(), key.encode()):
                found = tenant
        return found


class KeyGuard:
    """ASGI middleware: under `prefix`, a request without a known key is answered 401 before its body is read."""

    def __init__(self, app: ASGIApp, keys: ApiKeys, prefix: str = "/v1/") -> None:
        self.app, self.keys, self.prefix = app, keys, prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            if self.keys.tenant(headers.get("authorization"), headers.get("x-api-key")) is None:
                body = json.dumps({"detail": "missing or unknown API key"}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
