"""Where each upload is, read from the pipeline's own compacted `videos.status` topic.

Every gateway replica reads the whole topic from the beginning (no consumer group, nothing committed) into
a map, and keeps following it: the topic is compacted by video id, so its size is the catalogue's, not
its history's. Requests read the map; no request scans a topic.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from pydantic import ValidationError

from services.common.kafka.codec import decode
from services.common.kafka.config import consumer_config
from services.common.messages import Topics, VideoStatus
from services.common.settings import CommonSettings

log = logging.getLogger(__name__)


class StatusView:
    def __init__(self, settings: CommonSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._by_video: dict[str, VideoStatus] = {}
        self._by_event: dict[str, str] = {}
        self._caught_up = threading.Event()
        self._stop = threading.Event()
        self._last_poll = 0.0
        self._thread = threading.Thread(target=self._follow, name="status-view", daemon=True)

    def start(self) -> StatusView:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def ready(self) -> bool:
        """Caught up with the topic once, and still polling it."""
        return self._caught_up.is_set() and time.monotonic() - self._last_poll < 30

    def video(self, video_id: str) -> VideoStatus | None:
        with self._lock:
            return self._by_video.get(video_id)

    def upload(self, event_id: str) -> VideoStatus | None:
        with self._lock:
            video_id = self._by_event.get(event_id)
            found = self._by_video.get(video_id) if video_id else None
        return found

    def apply(self, status: VideoStatus) -> None:
        """Newest upload of a video wins; within one upload a stage never goes back (at-least-once input)."""
        with self._lock:
            current = self._by_video.get(status.video_id)
            if current is not None and not status.supersedes(current):
                self._by_event.setdefault(status.event_id, status.video_id)
                return
            self._by_video[status.video_id] = status
            self._by_event[status.event_id] = status.video_id

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                self._consume()
            except KafkaException as exc:
                log.warning("status view lost Kafka, reconnecting", extra={"error": str(exc)})
                self._stop.wait(2)

    def _consume(self) -> None:
        config = consumer_config(self._settings, group_id=f"gateway-status-view-{id(self)}")
        config.update({"enable.auto.commit": False, "isolation.level": "read_committed"})
        consumer = Consumer(config)
        try:
            meta = consumer.list_topics(Topics.STATUS, timeout=10)
            partitions = sorted(meta.topics[Topics.STATUS].partitions)
            consumer.assign([TopicPartition(Topics.STATUS, p, OFFSET_BEGINNING) for p in partitions])
            ends = {
                p: consumer.get_watermark_offsets(TopicPartition(Topics.STATUS, p), timeout=10)[1] for p in partitions
            }
            positions = dict.fromkeys(partitions, 0)
            while not self._stop.is_set():
                message = consumer.poll(0.5)
                self._last_poll = time.monotonic()
                if message is not None and message.error() is None:
                    positions[message.partition() or 0] = (message.offset() or 0) + 1
                    if message.value():
                        try:
                            self.apply(decode(message.value(), VideoStatus))
                        except (ValidationError, ValueError) as exc:
                            log.warning("unreadable status record skipped", extra={"error": str(exc)})
                if not self._caught_up.is_set() and all(positions[p] >= ends[p] for p in partitions):
                    self._caught_up.set()
                    log.info("status view caught up", extra={"videos": len(self._by_video)})
        finally:
            consumer.close()
