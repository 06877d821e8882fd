"""Registering sources by URI: one at a time or in batches, each with its own outcome."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from fastapi import APIRouter, Header

from services.common.errors import ClipstreamError
from services.common.http import Tenant, status_for
from services.gateway.deps import GatewayParts, Parts
from services.gateway.models import Batch, BatchResult, ItemResult
from services.intake.models import Registered, Registration

router = APIRouter(tags=["registration"])
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200, description="retries with the same key register once"),
]


def register(parts: Parts, tenant: str, body: Registration, idempotency_key: str | None, door: str) -> Registered:
    """The gateway's doors into the one registration step; its own view shows the upload at once."""
    answer, upload = parts.get("registrar").register(tenant, body, idempotency_key, door)
    parts.get("view").note(upload)
    return answer


@router.post("/v1/videos", status_code=202, response_model=Registered)
def register_uri(
    body: Registration, tenant: Tenant, parts: GatewayParts, idempotency_key: IdempotencyKey = None
) -> Registered:
    """202: the registration is in Kafka and will reach an outcome (indexed, or failed with its reason)."""
    return register(parts, tenant, body, idempotency_key, "uri")


@router.post("/v1/videos/batch", response_model=BatchResult)
def register_batch(body: Batch, tenant: Tenant, parts: GatewayParts) -> BatchResult:
    """Up to 100 registrations; each item answers for itself (its status is what it alone would have got),
    so a client retries exactly the items that did not get 202 (with their own keys to be safe)."""

    def one(index: int) -> ItemResult:
        item = body.items[index]
        fields = Registration.model_validate(item.model_dump(exclude={"idempotency_key"}))
        try:
            return ItemResult(
                index=index, status=202, registered=register(parts, tenant, fields, item.idempotency_key, "batch")
            )
        except ClipstreamError as exc:
            return ItemResult(index=index, status=status_for(exc), reason=exc.reason, detail=exc.detail)

    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="batch") as pool:
        return BatchResult(results=list(pool.map(one, range(len(body.items)))))
