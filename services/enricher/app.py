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
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from services.common import telemetry
from services.common.messages import (
    DeadLetter,
    SegmentIndexed,
    Topics,
    VideoIndexed,
    VideoProbed,
    VideoRemoved,
    VideoStatus,
    VideoUploaded,
)
from services.enricher import status
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
uploaded_topic = app.topic(Topics.UPLOADED, key_serializer="raw", value_serializer="raw")
probed_topic = app.topic(Topics.PROBED, key_serializer="raw", value_serializer="raw")
indexed_topic = app.topic(Topics.INDEXED, key_serializer="raw", value_serializer="raw")
status_topic = app.topic(Topics.STATUS, key_serializer="raw", value_serializer="raw")
removed_topic = app.topic(Topics.REMOVED, key_serializer="raw", value_serializer="raw")
progress: dict[str, Progress] = {}  # video id -> its upload in flight; pruned when complete


async def _publish(record: VideoStatus | None) -> None:
    if record is not None:
        await status_topic.send(key=record.video_id.encode(), value=record.model_dump_json().encode())
        telemetry.MESSAGES_OUT.labels("enricher", Topics.STATUS).inc()


async def _parse(event: Any, model: type[BaseModel]) -> Any:
    """The event's message, or None. A malformed message of the enricher's own input (the indexer's acks)
    is dead-lettered; one on a topic it only observes is the owning stage's to dead-letter, not twice."""
    topic = event.message.topic
    telemetry.MESSAGES_IN.labels("enricher", topic).inc()
    try:
        return model.model_validate_json(event.value)
    except ValidationError as exc:
        if topic != Topics.SEGMENTS_INDEXED:
            log.debug("unreadable message skipped by the status projection", extra={"topic": topic})
            return None
        letter = DeadLetter.of(
            "enricher",
            "malformed_message",
            str(exc),
            (topic, event.message.partition, event.message.offset),
            event.key,
            event.value,
        )
        telemetry.DEAD_LETTERS.labels("enricher", letter.reason).inc()
        await dead_letter_topic.send(key=event.key, value=letter.model_dump_json().encode())
        return None


@app.agent(uploaded_topic)
async def status_of_uploads(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        if (up := await _parse(event, VideoUploaded)) is not None:
            await _publish(status.registered(up))


@app.agent(probed_topic)
async def status_of_probes(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        if (probe := await _parse(event, VideoProbed)) is not None:
            await _publish(status.probed(probe))


@app.agent(indexed_topic)
async def status_of_completions(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        if (done := await _parse(event, VideoIndexed)) is not None:
            await _publish(status.indexed(done))


@app.agent(removed_topic)
async def status_of_removals(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        if (removed := await _parse(event, VideoRemoved)) is not None:
            progress.pop(removed.video_id, None)  # a deleted video has no upload in flight any more
            telemetry.UPLOADS_IN_FLIGHT.set(len(progress))
            await _publish(status.deleted(removed))


@app.agent(dead_letter_topic)
async def status_of_failures(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        if (letter := await _parse(event, DeadLetter)) is not None:
            await _publish(status.failed(letter))


@app.agent(acks_topic)
async def track_completion(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        ack = await _parse(event, SegmentIndexed)
        if ack is None:
            continue
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
    ready = app.rebalancing is False and app.consumer is not None
    return Response(text="ready" if ready else "not ready", status=200 if ready else 503)


@app.page("/metrics")  # type: ignore[arg-type]
async def metrics(_web: Any, _request: Any) -> Response:
    return Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
