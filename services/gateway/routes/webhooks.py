"""Outcome webhooks: a tenant registers receiver URLs for its videos' outcomes (indexed, failed, deleted,
duplicate found, QC verdict); the dispatcher (`services.webhooks`) delivers them, signed with the endpoint's
secret (Standard Webhooks). The secret is answered once, at creation; listings never show it."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from services.common.errors import Conflict, InvalidRequest, NotFound, PermanentError
from services.common.http import Tenant
from services.common.messages import WEBHOOK_EVENT_TYPES, WebhookEndpoint, WebhookEventType
from services.common.webhooks import EndpointRegistry
from services.gateway.deps import GatewayParts
from services.media.errors import DecodeError
from services.media.sources import check_http

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
ENDPOINT_ID = r"^ep_[0-9a-f]{24}$"
EndpointId = Annotated[str, PathParam(max_length=27)]


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048, description="under the allowed URL prefixes")
    event_types: list[WebhookEventType] = Field(
        default_factory=lambda: list(WEBHOOK_EVENT_TYPES), min_length=1, max_length=len(WEBHOOK_EVENT_TYPES)
    )
    description: str = Field(default="", max_length=256)


class Endpoint(BaseModel):
    id: str
    url: str
    event_types: list[WebhookEventType]
    description: str
    created_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> Endpoint:
        shown = endpoint.model_dump(include={"url", "event_types", "description", "created_at"})
        return cls(id=endpoint.endpoint_id, **shown)


class EndpointCreated(Endpoint):
    secret: str = Field(description="whsec_...: verify each delivery's webhook-signature with it; shown only now")


class EndpointPage(BaseModel):
    items: list[Endpoint]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: this was the last")


def _registry(parts: GatewayParts) -> EndpointRegistry:
    registry: EndpointRegistry = parts.get("webhooks")
    return registry


def _allowed(url: str, prefixes: list[str]) -> str:
    try:
        return check_http(url, prefixes)
    except DecodeError as exc:
        raise PermanentError(f"the URL is not allowed: {exc.detail}", reason="url_not_allowed") from exc


@router.post("", status_code=201, response_model=EndpointCreated)
def create_endpoint(body: EndpointIn, tenant: Tenant, parts: GatewayParts) -> EndpointCreated:
    """201 with the endpoint and its signing secret (shown only in this answer). Events recorded from now on
    are delivered to it; a URL outside the allowed prefixes is 422."""
    registry = _registry(parts)
    url = _allowed(body.url, registry.settings.allowed_url_prefixes)
    registry.table.sync()
    if len(registry.table.of_tenant(tenant)) >= registry.settings.max_endpoints_per_tenant:
        raise Conflict(
            f"at most {registry.settings.max_endpoints_per_tenant} endpoints per tenant: delete one first",
            reason="too_many_endpoints",
        )
    endpoint, secret = registry.create(tenant, url, body.event_types, body.description)
    return EndpointCreated(**Endpoint.of(endpoint).model_dump(), secret=secret)


@router.get("", response_model=EndpointPage)
def list_endpoints(
    tenant: Tenant,
    parts: GatewayParts,
    cursor: Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> EndpointPage:
    """The tenant's endpoints, oldest first, without their secrets."""
    if cursor is not None and not re.fullmatch(ENDPOINT_ID, cursor):
        raise InvalidRequest("the cursor is not one this API gave out", reason="bad_cursor")
    registry = _registry(parts)
    registry.table.sync()
    found = [e for e in registry.table.of_tenant(tenant) if cursor is None or e.endpoint_id > cursor]
    items = found[:limit]
    more = len(found) > limit
    return EndpointPage(items=[Endpoint.of(e) for e in items], next_cursor=items[-1].endpoint_id if more else None)


def _mine(parts: GatewayParts, tenant: str, endpoint_id: str) -> WebhookEndpoint:
    registry = _registry(parts)
    registry.table.sync()
    found = registry.table.get(tenant, endpoint_id)
    if found is None:  # another tenant's endpoint is not found either
        raise NotFound("no such webhook endpoint for this tenant")
    return found


@router.get("/{endpoint_id}", response_model=Endpoint)
def get_endpoint(endpoint_id: EndpointId, tenant: Tenant, parts: GatewayParts) -> Endpoint:
    return Endpoint.of(_mine(parts, tenant, endpoint_id))


@router.delete("/{endpoint_id}", status_code=204, response_class=Response)
def delete_endpoint(endpoint_id: EndpointId, tenant: Tenant, parts: GatewayParts) -> Response:
    """204: nothing more is delivered to it (deliveries still pending for it are dropped)."""
    _mine(parts, tenant, endpoint_id)
    _registry(parts).delete(tenant, endpoint_id)
    return Response(status_code=204)
