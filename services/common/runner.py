"""Process entry point shared by the confluent-kafka stages: telemetry, health server, graceful SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from services.common import telemetry
from services.common.health import HealthServer
from services.common.settings import StageSettings

log = logging.getLogger(__name__)

S = TypeVar("S", bound=StageSettings)


class Stage(Protocol):
    """What a process runs: a `TransactionalProcessor`, or any consumer loop with the same health surface."""

    def ready(self) -> bool: ...

    def live(self) -> bool: ...

    def run(self, stop: threading.Event) -> None: ...


def serve(
    service: str,
    settings: S,
    build: Callable[[S], Stage | Sequence[Stage]],
) -> None:
    """Run one stage until SIGTERM/SIGINT, with /healthz, /readyz and /metrics on its health port. A stage
    with several processors is ready and live only while every one of them is."""
    telemetry.setup(service, settings.common)
    built = build(settings)
    processors = list(built) if isinstance(built, Sequence) else [built]
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def ready() -> bool:
        return all(p.ready() for p in processors)

    telemetry.export_readiness(service, ready)
    health = HealthServer(
        settings.health_host, settings.health_port, ready, lambda: all(p.live() for p in processors)
    ).start()
    log.info("started", extra={"health_port": health.port})
    others = [threading.Thread(target=p.run, args=(stop,), daemon=True) for p in processors[1:]]
    try:
        for thread in others:
            thread.start()
        processors[0].run(stop)
    finally:
        stop.set()
        for thread in others:
            thread.join(30)
        health.stop()
