"""`python -m services.search`: the search API and web page on the configured loopback host/port."""

from __future__ import annotations

import uvicorn

from services.common.telemetry import setup
from services.search.api import create_app
from services.search.settings import SearchSettings


def main() -> None:
    settings = SearchSettings()
    setup("search", settings.common)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
