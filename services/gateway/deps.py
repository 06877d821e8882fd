"""What the gateway's routes depend on, built once per app and reached through one dependency each.

Clients (the Kafka publisher, the views that follow compacted topics, the object store) are made on first
use, so an app builds without a broker or a store, and tests can hand in their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from services.common.kafka.publisher import Publisher
from services.gateway.settings import GatewaySettings


class Parts:
    def __init__(self, settings: GatewaySettings, **given: Any) -> None:
        self.settings = settings
        self._made: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        self._makers: dict[str, Callable[[], Any]] = {}
        self._lock = threading.RLock()  # a maker may get the parts it needs

    def provide(self, name: str, maker: Callable[[], Any]) -> None:
        """How to make `name` on first use (unless one was given)."""
        self._makers[name] = maker

    def get(self, name: str) -> Any:
        with self._lock:
            if name not in self._made:
                self._made[name] = self._makers[name]()
            return self._made[name]

    def made(self, name: str) -> Any | None:
        return self._made.get(name)

    @property
    def publisher(self) -> Publisher:
        return self.get("publisher")


def parts(request: Request) -> Parts:
    return request.app.state.parts


GatewayParts = Annotated[Parts, Depends(parts)]
