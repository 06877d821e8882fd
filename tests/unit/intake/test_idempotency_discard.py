"""A keyed registration's producer that was fenced by another replica raises its fatal error again when it is
closed; that second raise must not replace the registration's own answer (it turned a race into a 500)."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from services.intake.idempotency import _discard


class FencedProducer:
    """What librdkafka's producer does after `_FENCED`: every later call re-raises the fatal error."""

    def __init__(self) -> None:
        self.closed = False

    def purge(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True
        raise KafkaException(KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True))


def test_discarding_a_fenced_producer_raises_nothing_and_still_closes_it() -> None:
    producer = FencedProducer()
    _discard(producer)  # type: ignore[arg-type]
    assert producer.closed
