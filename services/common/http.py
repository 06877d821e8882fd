"""What every HTTP service of ours puts in front of its routes: API keys → tenants, bounded bodies.

Both act before a request body is read: FastAPI parses multipart forms (spooling uploads to disk) before it
runs an endpoint's dependencies, so a key check or a size check inside the endpoint comes too late.
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


class Guard:
    """ASGI middleware: under `prefix`, no key → 401 and an oversized body → 413, before the body is read.

    The size is checked against Content-Length up front and against the bytes actually received (chunked
    uploads carry no length)."""

    def __init__(self, app: ASGIApp, keys: ApiKeys, max_body_bytes: int, prefix: str = "/v1/") -> None:
        self.app, self.keys, self.max_body_bytes, self.prefix = app, keys, max_body_bytes, prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.keys.tenant(headers.get("authorization"), headers.get("x-api-key")) is None:
            await _reply(send, 401, "missing or unknown API key", [(b"www-authenticate", b"Bearer")])
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await _reply(send, 413, f"request body larger than {self.max_body_bytes} bytes")
            return
        received = 0
        started = False

        async def bounded_receive() -> dict[str, Any]:
            nonlocal received
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started |= message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _reply(send, 413, f"request body larger than {self.max_body_bytes} bytes")


class _TooLarge(Exception):
    pass


async def _reply(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": body})
