"""The retry policy's defaults are stated once (`RetryPolicy`): settings and the processor read them there."""

from __future__ import annotations

import pytest

from services.common.kafka.processor import ProcessorConfig
from services.common.retry import RetryPolicy
from services.common.settings import CommonSettings


def test_settings_and_the_processor_default_to_the_one_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLIPSTREAM_RETRY_MAX_ATTEMPTS", "CLIPSTREAM_RETRY_BACKOFF_MAX_S"):
        monkeypatch.delenv(name, raising=False)
    assert CommonSettings().retry_policy() == RetryPolicy()
    assert ProcessorConfig(service="s", group_id="g", input_topic="t").retry == RetryPolicy()
    assert RetryPolicy().backoff_max_s == 30.0 and RetryPolicy().max_attempts == 8


def test_env_sets_the_policy_every_stage_gets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIPSTREAM_RETRY_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("CLIPSTREAM_RETRY_BACKOFF_MAX_S", "4.5")
    settings = CommonSettings()
    fields = settings.processor_fields()
    config = ProcessorConfig(service="s", group_id="g", input_topic="t", **fields)
    assert config.retry == RetryPolicy(max_attempts=3, backoff_max_s=4.5)
    assert config.kafka_timeout_s == settings.kafka_call_timeout_s
