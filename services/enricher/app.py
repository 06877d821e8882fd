"""The faust-streaming app. Table updates, emitted events and offsets commit together (exactly_once)."""

from __future__ import annotations

import logging
from typing import Any

import faust
from aiohttp.web import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from services.common import telemetry
from services.common.kafka.codec import CONTENT_TYPE
from services.common.messages import DeadLetter, SegmentIndexed, Topics
from services.enricher.completion import Completion, apply_ack
from services.enricher.settings import EnricherSettings

log = logging.getLogger(__name__)
settings = EnricherSettings()
telemetry.setup("enricher", settings.common)

app = faust.App(
    settings.group_id,
    broker=f"kafka://{settings.common.kafka_bootstrap}",
    datadir=settings.data_dir or str(settings.common.home / "enricher"),
    store="memory://",
    processing_guarantee="exactly_once",
    topic_partitions=settings.common.topic_partitions,
    web_host=settings.health_host,
    web_port=settings.health_port,
    web_in_thread=False,
    broker_session_timeout=settings.common.kafka_session_timeout_ms / 1000,
    consumer_auto_offset_reset="earliest",
)

acks_topic = app.topic(Topics.SEGMENTS_INDEXED, key_serializer="raw", value_serializer="raw")
indexed_topic = app.topic(Topics.INDEXED, key_serializer="raw", value_serializer="raw")
dead_letter_topic = app.topic(Topics.DEAD_LETTER, key_serializer="raw", value_serializer="raw")
completion = app.Table("completion", default=None, partitions=settings.common.topic_partitions)


def _headers(event: Any) -> list[tuple[str, bytes]]:
    ctx = telemetry.context_from_headers(list((event.headers or {}).items()))
    return [CONTENT_TYPE, *telemetry.headers_with_trace(ctx)]


@app.agent(acks_topic)
async def track_completion(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        telemetry.MESSAGES_IN.labels("enricher", Topics.SEGMENTS_INDEXED).inc()
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
            continue
        key = ack.video_id.encode()
        raw = completion.get(key)
        state = Completion.model_validate(raw) if raw else None
        new_state, done = apply_ack(state, ack)
        completion[key] = new_state.model_dump(mode="json")
        if done is not None:
            await indexed_topic.send(key=key, value=done.model_dump_json().encode(), headers=_headers(event))
            telemetry.MESSAGES_OUT.labels("enricher", Topics.INDEXED).inc()
            log.info("video indexed", extra={"video_id": ack.video_id, "segments": done.segment_count})


@app.page("/healthz")  # type: ignore[arg-type]
async def healthz(_web: Any, _request: Any) -> Response:
    return Response(text="ok")


@app.page("/readyz")  # type: ignore[arg-type]
async def readyz(_web: Any, _request: Any) -> Response:
    ready = app.rebalancing is False and app.consumer is not None
    return Response(text="ready" if ready else "not ready", status=200 if ready else 503)


@app.page("/metrics")  # type: ignore[arg-type]
async def metrics(_web: Any, _request: Any) -> Response:
    return Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
