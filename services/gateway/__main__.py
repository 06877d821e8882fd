"""`python -m services.gateway`: the upload gateway's HTTP API on the configured loopback host/port."""

from __future__ import annotations

import uvicorn

from services.common.telemetry import setup
from services.gateway.api import create_app
from services.gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    setup("gateway", settings.common)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
