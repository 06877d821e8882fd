"""Structured logs, Prometheus metrics and OpenTelemetry tracing, set up the same way in every service.

Trace context travels in Kafka headers (W3C `traceparent`), so one trace follows a video across services.
Spans are exported as the standard variables say: `OTEL_TRACES_EXPORTER=otlp` (else the setting
`CLIPSTREAM_OTEL_EXPORTER`: none | console | otlp), with `OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_PROTOCOL` (http/protobuf, the default, or grpc), headers, timeouts and the batch
processor's `OTEL_BSP_*` read by the SDK itself.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, SpanExporter
from prometheus_client import Counter, Gauge, Histogram
from pythonjsonlogger.json import JsonFormatter

from services.common.settings import CommonSettings

MESSAGES_IN = Counter("clipstream_messages_consumed_total", "Messages consumed", ["service", "topic"])
MESSAGES_OUT = Counter("clipstream_messages_produced_total", "Messages produced", ["service", "topic"])
DEAD_LETTERS = Counter("clipstream_dead_letters_total", "Messages sent to the dead-letter topic", ["service", "reason"])
RETRIES = Counter("clipstream_transient_retries_total", "Batches retried after a transient failure", ["service"])
HELD = Gauge(
    "clipstream_consumer_held", "1 while a consumer is paused to give way (a backfill to fresh uploads)", ["service"]
)
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
READY = Gauge(
    "clipstream_ready", "1 while the service can make progress (its /readyz), read at each scrape", ["service"]
)
FRESHNESS = Histogram(
    "clipstream_freshness_seconds",
    "From an upload's registration to its videos.indexed (searchable): the freshness SLO",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)


def export_readiness(service: str, ready: Callable[[], bool]) -> None:
    """Readiness as a gauge too, so an alert sees a replica that cannot make progress. Read at each scrape: a
    check that raises (a dependency that cannot even be reached) reads as not ready, never as a failed scrape."""

    def read() -> float:
        try:
            return 1.0 if ready() else 0.0
        except Exception:
            return 0.0

    READY.labels(service).set_function(read)


def _exporter(settings: CommonSettings) -> SpanExporter | None:
    kind = (os.environ.get("OTEL_TRACES_EXPORTER") or settings.otel_exporter).split(",")[0].strip().lower()
    if kind == "console":
        return ConsoleSpanExporter()
    if kind != "otlp":
        return None
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()


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
        exporter = _exporter(settings)
        if isinstance(exporter, ConsoleSpanExporter):
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        elif exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))  # flushed at exit by the provider
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
