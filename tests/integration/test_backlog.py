"""A group's backlog as of a moment (`Backlog`, what a reindex waits on after its switch), on the real broker with
transactions: markers and aborted messages are no work, messages produced after the moment are not counted, a
partition's end or emptiness says it is drained."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from services.common.kafka.config import consumer_config, producer_config
from services.common.kafka.lag import Backlog
from services.common.settings import CommonSettings


def _produce(producer: Producer, topic: str, n: int, commit: bool = True, partitions: int = 2) -> None:
    producer.begin_transaction()
    for i in range(n):
        producer.produce(topic, key=f"k{i}".encode(), value=b"x", partition=i % partitions)
    (producer.commit_transaction if commit else producer.abort_transaction)(30)


def _take(common: CommonSettings, topic: str, group: str, partition: int, n: int) -> None:
    """Take the next `n` messages of one partition as a stage does (read_committed, from the group's committed
    offset) and commit the position after them."""
    consumer = Consumer(consumer_config(common, group))
    consumer.assign([TopicPartition(topic, partition)])  # from the committed offset (the beginning if none)
    after = -1
    while n > 0:
        for msg in consumer.consume(1, 5):
            offset = msg.offset()
            if msg.error() is None and offset is not None:
                after, n = offset + 1, n - 1
    consumer.commit(offsets=[TopicPartition(topic, partition, after)], asynchronous=False)
    consumer.close()


def test_a_backlog_is_drained_when_the_group_took_every_committed_message_before_its_mark(
    common: CommonSettings,
) -> None:
    topic, group = f"backlog-{uuid.uuid4().hex[:8]}", f"backlog-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": common.kafka_bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]).values():
        future.result(30)
    producer = Producer(producer_config(common, transactional_id=f"backlog-{uuid.uuid4().hex[:8]}"))
    producer.init_transactions(30)
    try:
        _produce(producer, topic, 4)
        _produce(producer, topic, 2, commit=False)  # aborted: never work
        backlog = Backlog(common, topic, group)
        try:
            assert not backlog.drained(), "nothing taken yet"
            _produce(producer, topic, 3, partitions=1)  # after the mark (partition 0 only): not counted
            _take(common, topic, group, 0, 2)
            assert not backlog.drained(), "partition 1's two messages before the mark are left"
            _take(common, topic, group, 1, 2)
            # every message before the mark taken: the committed offsets stop below the marks (transaction
            # markers and the aborted messages lie between); partition 0's later messages are still there,
            # partition 1 ends in a marker (its end says it), partition 2 never had a message
            assert backlog.drained() and backlog.committed_any
        finally:
            backlog.close()
    finally:
        producer.flush(10)
        admin.delete_topics([topic])
