"""Signing the page in with a one-time login link (see `services/search/login.py`).

`POST /login` lives outside `/v1/`, like `/media/{token}`: the token is the credential, the caller has no key
yet. It answers only loopback clients (the links are a local-stack convenience; a deployed service has no
tokens to redeem, and a leaked link is useless from elsewhere), and its answer is never cached.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.search.deps import Logins
from services.search.login import LoginRefused

router = APIRouter(include_in_schema=False)


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=128)


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.post("/login")
def login(body: LoginRequest, request: Request, logins: Logins) -> JSONResponse:
    """The API key of the token's tenant, for the page to hold for this tab; the token is used up."""
    if not _loopback(request):
        raise HTTPException(403, "login links work only from this machine (loopback)")
    try:
        found = logins.redeem(body.token)
    except LoginRefused as exc:
        detail = f"{exc.detail}: run `clipstream login` for a new link"
        raise HTTPException(401, detail) from exc
    answer: dict[str, Any] = {"tenant": found.tenant, "api_key": found.api_key}
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})
