"""The ledger against the real broker: a read covers exactly what was committed before it (transaction markers,
aborted transactions and all), ends while a topic keeps getting messages, and fails loudly rather than
returning part of a ledger. It taps a topic of its own, so the running stages do not write to it."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from services.common.kafka.codec import encode
from services.common.kafka.config import producer_config
from services.common.messages import VideoIndexed
from services.common.settings import CommonSettings
from tests.ledger import LedgerIncomplete, TopicTap

PARTITIONS = 4


@pytest.fixture
def topic(common: CommonSettings) -> str:
    name = f"ledger-test-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": common.kafka_bootstrap})
    for future in admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)]).values():
        future.result(30)
    deadline = time.monotonic() + 30
    while True:
        partitions = admin.list_topics(name, timeout=10).topics[name].partitions
        if len(partitions) == PARTITIONS and all(p.leader >= 0 for p in partitions.values()):
            return name
        assert time.monotonic() < deadline, f"{name} never got its partitions and their leader"
        time.sleep(0.2)


def _value(event_id: str) -> bytes:
    return encode(VideoIndexed(event_id=event_id, video_id="v1", segment_count=1, collection="c", model_version="1"))


def _producer(common: CommonSettings) -> Producer:
    producer = Producer(producer_config(common, f"ledger-test-{uuid.uuid4().hex[:8]}"))
    producer.init_transactions(30)
    return producer


def _transaction(producer: Producer, topic: str, sends: list[tuple[int, str]], commit: bool = True) -> None:
    producer.begin_transaction()
    for partition, event_id in sends:
        producer.produce(topic, value=_value(event_id), partition=partition)
    if commit:
        producer.commit_transaction(30)
    else:
        producer.abort_transaction(30)


def test_a_read_counts_exactly_what_was_committed_before_it(common: CommonSettings, topic: str) -> None:
    tap = TopicTap(common, topics=(topic,))
    producer = _producer(common)
    try:
        # partitions 1 and 2 end in transaction markers (abort, commit), which no consumer ever receives: the
        # read must get past them; 0 ends in a message after an aborted transaction, 3 holds plain messages
        # only: a read stopping one short of either end misses its last message
        _transaction(producer, topic, [(i % 3, f"e{i}") for i in range(6)])
        _transaction(producer, topic, [(0, "e0"), (1, "e1")], commit=False)  # aborted: never counted
        _transaction(producer, topic, [(2, "e1")])  # a second committed copy: a duplicate
        plain = Producer(producer_config(common))
        for partition, event_id in ((0, "p0"), (3, "p1"), (3, "p2")):
            plain.produce(topic, value=_value(event_id), partition=partition)
        assert plain.flush(30) == 0
        events = {f"e{i}" for i in range(6)} | {"p0", "p1", "p2"}
        ledger = tap.read(events, settle_s=0, timeout_s=60)
        assert ledger.duplicates() == {(topic, "e1", -1): 2}
        assert {e: ledger.count(topic, e) for e in events} == {**dict.fromkeys(events, 1), "e1": 2}

        # a transaction still open when the read is asked is waited for (a duplicate may be in it): the read
        # ends once it is decided, and counts it if committed, not if aborted
        for decision, expected in ((True, 1), (False, 0)):
            producer.begin_transaction()
            producer.produce(topic, value=_value(f"late-{decision}"), partition=0)
            producer.flush(30)
            decided = threading.Event()

            def decide(commit: bool = decision, done: threading.Event = decided) -> None:
                (producer.commit_transaction if commit else producer.abort_transaction)(30)
                done.set()

            deciding = threading.Timer(2.0, decide)
            deciding.start()
            try:
                late = tap.read({f"late-{decision}"}, settle_s=0, timeout_s=60)
                assert decided.is_set(), "the read ended before the open transaction was decided"
            finally:
                deciding.join()
            assert late.count(topic, f"late-{decision}") == expected
        assert tap.read(events, settle_s=0, timeout_s=30).counts == ledger.counts  # the starts stay
    finally:
        tap.close()


def test_a_read_ends_while_the_topic_keeps_getting_messages(common: CommonSettings, topic: str) -> None:
    """A busy topic is never quiet: a read that waited for silence would never end (or end anywhere)."""
    tap = TopicTap(common, topics=(topic,))
    producer = _producer(common)
    stop = threading.Event()
    sent = 0

    def keep_writing() -> None:
        nonlocal sent
        while not stop.is_set():
            _transaction(producer, topic, [(sent % PARTITIONS, f"busy-{sent}")])
            sent += 1
            time.sleep(0.05)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        while sent < 20:
            time.sleep(0.1)
        before = sent
        started = time.monotonic()
        ledger = tap.read({f"busy-{i}" for i in range(10_000)}, settle_s=0, timeout_s=60)
        took = time.monotonic() - started
        counted = sum(ledger.counts.values())
        assert before <= counted <= sent + 1, (before, counted, sent)
        assert all(ledger.count(topic, f"busy-{i}") == 1 for i in range(before)), "a committed message was missed"
        assert took < 30, f"the read took {took:.1f}s"
    finally:
        stop.set()
        writer.join(30)
        tap.close()


def test_a_read_that_cannot_reach_its_ends_in_time_fails_loudly(common: CommonSettings, topic: str) -> None:
    tap = TopicTap(common, topics=(topic,))
    producer = _producer(common)
    try:
        _transaction(producer, topic, [(p, f"e{p}") for p in range(PARTITIONS)])
        with pytest.raises(LedgerIncomplete) as err:
            tap.read({"e0"}, settle_s=0, timeout_s=0)
        assert topic in str(err.value)
        assert tap.read({"e0"}, settle_s=0, timeout_s=60).count(topic, "e0") == 1  # in time, it is all there
    finally:
        tap.close()
