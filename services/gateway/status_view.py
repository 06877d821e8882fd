"""Where each upload is, read from the pipeline's own topics: the compacted `videos.status` (the enricher's
projection) and, for read-your-writes, `videos.uploaded` itself over a recent window.

Every gateway replica follows both into memory (no consumer group, nothing committed); requests read the
map. An upload is "registered" as soon as its event is in Kafka, whichever replica took it and however far
behind the enricher is. A lookup that finds nothing first syncs with the topics' current ends, so the
answer is a true 404, or 503 (Retry-After) while this replica cannot be sure — never a wrong 404.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from services.common.errors import TransientError
from services.common.kafka.codec import decode
from services.common.kafka.table import TableFollower
from services.common.messages import Topics, VideoStatus, VideoUploaded
from services.common.settings import CommonSettings

log = logging.getLogger(__name__)
EPOCH = datetime.fromtimestamp(0).astimezone()


class NotCaughtUp(TransientError):
    reason = "status_not_caught_up"


def _newest_first(status: VideoStatus) -> tuple[float, str]:
    return (-(status.uploaded_at or EPOCH).timestamp(), status.video_id)


class StatusView:
    def __init__(
        self, settings: CommonSettings, uploads_lookback_s: float = 3600.0, sync_timeout_s: float = 2.0
    ) -> None:
        self._by_video: dict[str, VideoStatus] = {}
        self._by_event: dict[str, str] = {}
        self._by_tenant: dict[str, list[tuple[float, str]]] = {}  # newest upload first, for listings
        self._lookback_s = uploads_lookback_s
        self._sync_timeout_s = sync_timeout_s
        self._lock = threading.Lock()
        self._table = TableFollower(
            settings, [Topics.STATUS, Topics.UPLOADED], self._apply_record, name="gateway-status", start=self._start
        )

    def _start(self, consumer: Consumer, tp: TopicPartition) -> int:
        if tp.topic != Topics.UPLOADED:
            return OFFSET_BEGINNING
        since = TopicPartition(tp.topic, tp.partition, int((time.time() - self._lookback_s) * 1000))
        found = consumer.offsets_for_times([since], timeout=10)[0].offset
        return found if found >= 0 else OFFSET_BEGINNING

    def start(self) -> StatusView:
        self._table.start()
        return self

    def stop(self) -> None:
        self._table.stop()

    def ready(self) -> bool:
        return self._table.ready()

    def _apply_record(self, topic: str, _key: str, value: bytes | None) -> None:
        if value is None:
            return
        if topic == Topics.UPLOADED:
            self.apply(VideoStatus.registered(decode(value, VideoUploaded)))
        else:
            self.apply(decode(value, VideoStatus))

    def apply(self, status: VideoStatus) -> None:
        """Newest upload of a video wins; within one upload a stage never goes back (at-least-once input)."""
        with self._lock:
            current = self._by_video.get(status.video_id)
            if current is not None and not status.supersedes(current):
                self._by_event.setdefault(status.event_id, status.video_id)
                return
            merged = status.merged(current)
            self._by_video[status.video_id] = merged
            self._by_event[status.event_id] = status.video_id
            index = self._by_tenant.setdefault(merged.tenant, [])
            if current is not None and current.tenant == merged.tenant:
                old = _newest_first(current)
                at = bisect.bisect_left(index, old)
                if at < len(index) and index[at] == old:
                    del index[at]
            bisect.insort(index, _newest_first(merged))

    def note(self, upload: VideoUploaded) -> None:
        """This replica's own registration, visible at once (the others see it from the topic)."""
        self.apply(VideoStatus.registered(upload))

    def _lookup(self, find: str, by_event: bool) -> VideoStatus | None:
        with self._lock:
            video_id = self._by_event.get(find) if by_event else find
            return self._by_video.get(video_id) if video_id else None

    def _sure(self, find: str, by_event: bool) -> VideoStatus | None:
        found = self._lookup(find, by_event)
        if found is not None:
            return found
        if not self._table.sync(self._sync_timeout_s):
            raise NotCaughtUp("the status view has not caught up with Kafka yet")
        return self._lookup(find, by_event)

    def video(self, video_id: str) -> VideoStatus | None:
        return self._sure(video_id, by_event=False)

    def upload(self, event_id: str) -> VideoStatus | None:
        return self._sure(event_id, by_event=True)

    def listing(
        self,
        tenant: str,
        limit: int,
        after: tuple[float, str] | None = None,
        keep: Callable[[VideoStatus], bool] = bool,
    ) -> list[VideoStatus]:
        """Up to `limit` of the tenant's videos that `keep` accepts, newest upload first, after the cursor."""
        if not self._table.ready():
            raise NotCaughtUp("the status view has not caught up with Kafka yet")
        found: list[VideoStatus] = []
        with self._lock:
            index = self._by_tenant.get(tenant, [])
            for position in range(bisect.bisect_right(index, after) if after else 0, len(index)):
                status = self._by_video[index[position][1]]
                if keep(status):
                    found.append(status)
                    if len(found) == limit:
                        break
        return found


def cursor_of(status: VideoStatus) -> tuple[float, str]:
    return _newest_first(status)
