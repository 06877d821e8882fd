"""Structured logs, Prometheus metrics and OpenTelemetry tracing, set up the same way in every service.

Trace context travels in Kafka headers (W3C `traceparent`), so one trace follows a video across services.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from prometheus_client import Counter, Gauge, Histogram
from pythonjsonlogger.json import JsonFormatter

from services.common.settings import CommonSettings

MESSAGES_IN = Counter("clipstream_messages_consumed_total", "Messages consumed", ["service", "topic"])
MESSAGES_OUT = Counter("clipstream_messages_produced_total", "Messages produced", ["service", "topic"])
DEAD_LETTERS = Counter("clipstream_dead_letters_total", "Messages sent to the dead-letter topic", ["service", "reason"])
RETRIES = Counter("clipstream_transient_retries_total", "Batches retried after a transient failure", ["service"])
BATCH_SECONDS = Histogram(
    "clipstream_batch_seconds",
    "Time to process one consumed batch",
    ["service"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
BATCH_SIZE = Histogram(
    "clipstream_batch_messages", "Messages per processed batch", ["service"], buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)

UPLOADS_IN_FLIGHT = Gauge("clipstream_uploads_in_flight", "Uploads with some but not all segments durable")

_configured = False


def setup(service: str, settings: CommonSettings) -> trace.Tracer:
    """Configure JSON logging and the tracer provider once per process."""
    global _configured
    if not _configured:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", static_fields={"service": service})
        )
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(settings.log_level.upper())
        # request lines carry presigned URLs (signatures) and poll noise: keep these libraries quiet
        for noisy in ("httpx", "httpcore", "botocore", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        provider = TracerProvider(resource=Resource.create({"service.name": f"clipstream-{service}"}))
        if settings.otel_exporter == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
        _configured = True
    return trace.get_tracer(f"clipstream.{service}")


def headers_with_trace(context: Context | None = None) -> list[tuple[str, bytes]]:
    """Kafka headers carrying a trace context (the current one when none is given)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return [(k, v.encode()) for k, v in carrier.items()]


def context_from_headers(
    headers: Iterable[tuple[str, str | bytes | None]] | dict[str, str | bytes | None] | None,
) -> Context:
    pairs = headers.items() if isinstance(headers, dict) else (headers or [])
    carrier = {k: (v.decode(errors="replace") if isinstance(v, bytes) else v or "") for k, v in pairs}
    return propagate.extract(carrier)
