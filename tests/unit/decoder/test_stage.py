"""The decoder stage's settings that keep it in its consumer group through its longest decode."""

from __future__ import annotations

import pytest

from services.decoder.service import build
from services.decoder.settings import DecoderSettings


@pytest.mark.parametrize("budget_s", [60.0, 900.0, 3600.0])
def test_poll_interval_outlasts_the_hard_decode_deadline(monkeypatch: pytest.MonkeyPatch, budget_s: float) -> None:
    """librdkafka's default max.poll.interval.ms (300 s) is shorter than the default 900 s budget: a long decode
    would lose the partition and its transaction would be fenced."""
    monkeypatch.setenv("CLIPSTREAM_DECODER_DECODE_TIME_BUDGET_S", str(budget_s))
    settings = DecoderSettings()
    deadline_s = settings.isolated_decoder().deadline_s
    assert deadline_s > budget_s
    for processor in build(settings):  # fresh uploads and the backfill decode the same way
        assert processor.config.handle_timeout_s > deadline_s
        poll_ms = processor.config.consumer_overrides["max.poll.interval.ms"]
        assert isinstance(poll_ms, int) and poll_ms > processor.config.handle_timeout_s * 1000
