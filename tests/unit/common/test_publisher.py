"""Each publish answers from its own message's delivery report: never another request's error, and nothing
queued for one request is purged by another's failure. librdkafka's Producer is replaced by a stand-in that
holds delivery callbacks until the test resolves them (in any order), so the correlation logic is what runs."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from services.common.kafka.publisher import NotDelivered, Publisher
from services.common.messages import Topics, VideoUploaded
from services.common.settings import CommonSettings


class Err:
    def __init__(self, text: str) -> None:
        self.text = text

    def str(self) -> str:
        return self.text


class Msg:
    def __init__(self, offset: int) -> None:
        self._offset = offset

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class HeldProducer:
    """Keeps every message's delivery callback; `resolve(i, error)` fires the report of message i."""

    def __init__(self) -> None:
        self.callbacks: list[Any] = []
        self.purged = 0
        self.produced = threading.Event()

    def produce(self, topic: str, key: bytes, value: bytes, headers: list[Any], on_delivery: Any, **_: Any) -> None:
        self.callbacks.append(on_delivery)
        self.produced.set()

    def resolve(self, index: int, error: str | None) -> None:
        self.callbacks[index](Err(error) if error else None, None if error else Msg(index))

    def poll(self, _timeout: float) -> int:
        return 0

    def flush(self, _timeout: float) -> int:
        return 0

    def purge(self, *args: Any, **kwargs: Any) -> None:
        self.purged += 1

    def close(self) -> None:
        pass


@pytest.fixture
def publisher(tmp_path: Any) -> Any:
    real = Publisher(CommonSettings(home=tmp_path, kafka_bootstrap="127.0.0.1:9"), "test")
    real._closed.set()  # the report-serving thread is not needed: the stand-in fires reports itself
    real._poller.join()
    real._producer.purge()
    real._producer = HeldProducer()  # type: ignore[assignment]
    return real


def _upload(n: int) -> VideoUploaded:
    return VideoUploaded(video_id=f"v{n}", uri=f"file:///clip-{n}.mp4")


def test_each_request_gets_its_own_outcome_whatever_the_order_of_reports(publisher: Publisher) -> None:
    held: HeldProducer = publisher._producer  # type: ignore[assignment]
    first = publisher.publish(Topics.UPLOADED, _upload(1))
    second = publisher.publish(Topics.UPLOADED, _upload(2))
    third = publisher.publish(Topics.UPLOADED, _upload(3))
    held.resolve(1, "Local: Message timed out")  # the second fails first
    held.resolve(2, None)
    held.resolve(0, None)
    assert publisher.wait(first, 1) == (0, 0)
    with pytest.raises(NotDelivered, match="timed out") as failed:
        publisher.wait(second, 1)
    assert failed.value.maybe is False  # librdkafka reported it: it will not land
    assert publisher.wait(third, 1) == (0, 2)
    assert held.purged == 0  # one request's failure never drops another's message


def test_concurrent_waiters_answer_from_their_own_message(publisher: Publisher) -> None:
    held: HeldProducer = publisher._producer  # type: ignore[assignment]
    outcomes: dict[int, str] = {}

    def request(n: int) -> None:
        try:
            publisher.deliver(Topics.UPLOADED, _upload(n), timeout_s=5)
            outcomes[n] = "202"
        except NotDelivered:
            outcomes[n] = "503"

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(request, 0)]
        while len(held.callbacks) < 1:
            held.produced.wait(0.01)
        futures.append(pool.submit(request, 1))
        while len(held.callbacks) < 2:
            held.produced.wait(0.01)
        held.resolve(0, None)  # request 0 delivered
        held.resolve(1, "Broker: Not enough in-sync replicas")  # request 1 failed
        for future in futures:
            future.result()
    assert outcomes == {0: "202", 1: "503"}


def test_no_report_in_time_is_a_maybe(publisher: Publisher) -> None:
    with pytest.raises(NotDelivered) as late:
        publisher.deliver(Topics.UPLOADED, _upload(1), timeout_s=0.05)
    assert late.value.maybe is True  # still queued: it may land, so nothing prepared for it is undone
