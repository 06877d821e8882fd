"""The faust-streaming app: per-video progress of uploads in flight (segments durable so far), and the
status projection: every stage's event becomes the video's record on the compacted `videos.status` topic
(`status.py`), which the gateway reads to answer "where is my upload?".

Progress is derived data kept in memory: the durable records are each segment's Milvus row and ack, and
the indexer's `videos.indexed` for a complete upload. A faust changelogged table was used first, but after a
kill -9 its recovery hung for minutes (measured twice in the chaos suite; faust's recovery hangs are a
known class, robinhood/faust 218, faust-streaming 74), leaving the worker unready; progress restarts empty
instead and fills again from the acks that follow. Status records are published at least once and may
arrive out of order across topics; readers merge them with `VideoStatus.supersedes`.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from aiohttp.web import Response
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from services.common import telemetry
from services.common.messages import (
    DeadLetter,
    SegmentIndexed,
    Topics,
    VideoStatus,
)
from services.enricher import status
from services.enricher.completion import Progress, apply_ack
from services.enricher.settings import EnricherSettings

log = logging.getLogger(__name__)
settings = EnricherSettings()
tracer = telemetry.setup("enricher", settings.common)

app = faust.App(
    settings.group_id,
    broker=f"kafka://{settings.common.kafka_bootstrap}",
    datadir=settings.data_dir or str(settings.common.home / "enricher"),
    store="memory://",
    # at least once: the table update is idempotent (acks repeat harmlessly); faust-streaming's exactly_once
    # sends agent output outside the transaction (upstream issues 177, 517), measured: a kill -9 duplicated
    # committed events. `videos.indexed` is therefore published by the indexer, in its own transaction.
    processing_guarantee="at_least_once",
    topic_partitions=settings.common.topic_partitions,
    web_host=settings.health_host,
    web_bind=settings.health_host,  # faust binds 0.0.0.0 unless told: loopback by default
    web_port=settings.health_port,
    web_in_thread=False,
    broker_session_timeout=settings.common.kafka_session_timeout_ms / 1000,
    consumer_auto_offset_reset="earliest",
)

acks_topic = app.topic(Topics.SEGMENTS_INDEXED, key_serializer="raw", value_serializer="raw")
dead_letter_topic = app.topic(Topics.DEAD_LETTER, key_serializer="raw", value_serializer="raw")
observed_topic = app.topic(*status.OBSERVED, key_serializer="raw", value_serializer="raw")
status_topic = app.topic(Topics.STATUS, key_serializer="raw", value_serializer="raw")
progress: dict[str, Progress] = {}  # video id -> its upload in flight; pruned when complete


async def _publish(record: VideoStatus | None) -> None:
    if record is not None:
        await status_topic.send(key=record.video_id.encode(), value=record.model_dump_json().encode())
        telemetry.MESSAGES_OUT.labels("enricher", Topics.STATUS).inc()


def _span(event: faust.EventT[bytes]) -> trace.Span:
    """The consumer span of one event, a child of the span that produced it (trace context in its headers)."""
    message = event.message
    span = tracer.start_span(
        "enricher process", context=telemetry.context_from_headers(event.headers), kind=trace.SpanKind.CONSUMER
    )
    span.set_attributes(
        {
            "messaging.system": "kafka",
            "messaging.destination.name": message.topic,
            "messaging.kafka.destination.partition": message.partition,
            "messaging.kafka.message.offset": message.offset,
        }
    )
    return span


@app.agent(observed_topic)
async def project_status(stream: faust.StreamT[bytes]) -> None:
    """Every stage's own events, read as the video's status (`status.py`)."""
    async for event in stream.events():
        telemetry.MESSAGES_IN.labels("enricher", event.message.topic).inc()
        with trace.use_span(_span(event), end_on_exit=True):
            record = status.project(event.message.topic, event.value)
            if record is not None and record.stage == "deleted":
                progress.pop(record.video_id, None)  # a deleted video has no upload in flight any more
                telemetry.UPLOADS_IN_FLIGHT.set(len(progress))
            await _publish(record)


@app.agent(acks_topic)
async def track_completion(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        telemetry.MESSAGES_IN.labels("enricher", Topics.SEGMENTS_INDEXED).inc()
        with trace.use_span(_span(event), end_on_exit=True):
            await _track(event)


async def _track(event: faust.EventT[bytes]) -> None:
    try:
        ack = SegmentIndexed.model_validate_json(event.value)
    except ValidationError as exc:
        letter = DeadLetter.of(
            "enricher",
            "malformed_message",
            str(exc),
            (event.message.topic, event.message.partition, event.message.offset),
            event.key,
            event.value,
        )
        telemetry.DEAD_LETTERS.labels("enricher", letter.reason).inc()
        await dead_letter_topic.send(key=event.key, value=letter.model_dump_json().encode())
        return
    key = ack.video_id
    new_state = apply_ack(progress.get(key), ack)
    if new_state is None:
        progress.pop(key, None)  # complete: the indexer's `videos.indexed` is the record
    else:
        progress[key] = new_state
        if new_state.event_id == ack.event_id:
            await _publish(status.indexing(ack, len(new_state.indexed)))
    telemetry.UPLOADS_IN_FLIGHT.set(len(progress))


@app.page("/healthz")  # type: ignore[arg-type]
async def healthz(_web: Any, _request: Any) -> Response:
    return Response(text="ok")


@app.page("/readyz")  # type: ignore[arg-type]
async def readyz(_web: Any, _request: Any) -> Response:
    ready = _ready()
    return Response(text="ready" if ready else "not ready", status=200 if ready else 503)


def _ready() -> bool:
    return app.rebalancing is False and app.consumer is not None


telemetry.export_readiness("enricher", _ready)


@app.page("/metrics")  # type: ignore[arg-type]
async def metrics(_web: Any, _request: Any) -> Response:
    return Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
