"""A stage whose handler does not return in time reports itself dead (so the watchdog and the orchestrator
restart it), and one whose dependencies are down reports itself unready. No broker is needed: the clients
are only made when the processor runs."""

from __future__ import annotations

import threading
import time

from pydantic import BaseModel

from services.common.kafka.processor import ProcessorConfig, Received, Result, TransactionalProcessor
from services.common.settings import CommonSettings


class Nothing(BaseModel):
    pass


def test_a_handler_past_its_limit_makes_the_stage_not_live() -> None:
    release = threading.Event()

    def stuck(_batch: list[Received[Nothing]]) -> list[Result]:
        release.wait(10)
        return []

    config = ProcessorConfig(service="t", group_id="g", input_topic="x", handle_timeout_s=0.2)
    processor: TransactionalProcessor[Nothing] = TransactionalProcessor(CommonSettings(), config, Nothing, stuck)
    assert processor.live()
    worker = threading.Thread(target=processor._call, args=([],))
    worker.start()
    try:
        release.wait(1.0)  # well past the 0.2 s limit while the handler is still inside
        assert not processor.live()
    finally:
        release.set()
        worker.join(10)
    assert processor.live()


def test_dependencies_down_make_a_started_stage_unready() -> None:
    up = [True]
    config = ProcessorConfig(service="t", group_id="g", input_topic="x")
    processor: TransactionalProcessor[Nothing] = TransactionalProcessor(
        CommonSettings(), config, Nothing, lambda _b: [], dependencies_ready=lambda: up[0]
    )
    assert not processor.ready()  # not started
    processor._started.set()
    assert processor.ready()
    up[0] = False
    assert not processor.ready()


def test_a_stage_is_active_while_handling_and_for_quiet_s_after() -> None:
    config = ProcessorConfig(service="t", group_id="g", input_topic="x")
    processor: TransactionalProcessor[Nothing] = TransactionalProcessor(
        CommonSettings(), config, Nothing, lambda _b: []
    )
    assert not processor.active(quiet_s=5)  # never had input
    processor._in_batch = True
    assert processor.active(quiet_s=0)
    processor._in_batch, processor._last_input = False, time.monotonic() - 4.9
    assert processor.active(quiet_s=5)
    processor._last_input = time.monotonic() - 5.1
    assert not processor.active(quiet_s=5)


def test_a_backfill_consumer_is_held_by_its_fresh_one_and_dead_letters_apart() -> None:
    from services.common.kafka.processor import backfill_config
    from services.common.messages import Topics
    from services.decoder.settings import DecoderSettings

    stage = DecoderSettings(backfill_quiet_s=5, backfill_max_hold_s=12)
    config = ProcessorConfig(service="decoder", group_id=stage.group_id, input_topic="videos.uploaded")
    fresh: TransactionalProcessor[Nothing] = TransactionalProcessor(CommonSettings(), config, Nothing, lambda _b: [])
    backfill = backfill_config(fresh, Topics.BACKFILL, stage)
    assert (backfill.group_id, backfill.input_topic) == (stage.backfill_group_id, Topics.BACKFILL)
    assert backfill.group_id != config.group_id and backfill.dead_letter_topic == Topics.BACKFILL_DEAD_LETTER
    assert backfill.consumer_overrides == config.consumer_overrides
    assert backfill.consumer_overrides is not config.consumer_overrides
    assert backfill.hold is not None and not backfill.hold()
    fresh._in_batch = True  # the fresh consumer has work: the backfill gives way
    assert backfill.hold()
    assert backfill.max_hold_s == 12


def test_a_hold_lasts_at_most_max_hold_s_then_lets_a_batch_through() -> None:
    from services.common.kafka.processor import held

    assert held(False, None, 100.0, 30.0) == (False, None)  # fresh input quiet: no hold, no clock
    assert held(False, 90.0, 100.0, 30.0) == (False, None)
    assert held(True, None, 100.0, 30.0) == (True, 100.0)  # a hold begins
    assert held(True, 100.0, 129.999, 30.0) == (True, 100.0)
    assert held(True, 100.0, 130.0, 30.0) == (False, 100.0)  # starved: one round through, the clock kept
    assert held(True, 100.0, 500.0, 30.0) == (False, 100.0)  # until a batch restarts it (the processor)
