"""The faust-streaming app: per-video upload progress (segments durable so far) in a changelogged table.

It tracks uploads in flight for status queries; it publishes nothing downstream but dead letters.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from aiohttp.web import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from services.common import telemetry
from services.common.messages import DeadLetter, SegmentIndexed, Topics
from services.enricher.completion import Progress, apply_ack
from services.enricher.settings import EnricherSettings

log = logging.getLogger(__name__)
settings = EnricherSettings()
telemetry.setup("enricher", settings.common)

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
# keys and values as JSON (faust's default codec): raw bytes keys were written undecodable for recovery,
# and a restarted worker hung restoring the changelog
progress = app.Table(
    "progress", default=None, partitions=settings.common.topic_partitions, key_type=str, value_type=dict
)


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
        key = ack.video_id
        raw = progress.get(key)
        state = Progress.model_validate(raw) if raw else None
        new_state = apply_ack(state, ack)
        if new_state is None:
            if raw is not None:
                del progress[key]  # complete: the indexer's `videos.indexed` is the record
        elif new_state != state:
            progress[key] = new_state.model_dump(mode="json")


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
