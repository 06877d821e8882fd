"""The tenant of a request: decided by its API key alone, never by its body."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request


def tenant(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> str:
    found = request.app.state.api_keys.tenant(authorization, x_api_key)
    if found is None:  # KeyGuard answered already under /v1/; kept for routes outside it
        raise HTTPException(401, "missing or unknown API key", headers={"WWW-Authenticate": "Bearer"})
    return str(found)


Tenant = Annotated[str, Depends(tenant)]
