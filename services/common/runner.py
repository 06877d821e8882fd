"""Process entry point shared by the confluent-kafka stages: telemetry, health server, graceful SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from services.common import telemetry
from services.common.health import HealthServer
from services.common.kafka.processor import TransactionalProcessor
from services.common.settings import StageSettings

log = logging.getLogger(__name__)

S = TypeVar("S", bound=StageSettings)


def serve(service: str, settings: S, build: Callable[[S], TransactionalProcessor[Any]]) -> None:
    """Run one stage until SIGTERM/SIGINT, with /healthz, /readyz and /metrics on its health port."""
    telemetry.setup(service, settings.common)
    processor = build(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    health = HealthServer(settings.health_host, settings.health_port, processor.ready, processor.live).start()
    log.info("started", extra={"health_port": health.port})
    try:
        processor.run(stop)
    finally:
        health.stop()
