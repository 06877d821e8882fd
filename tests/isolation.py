"""A clean settings environment for tests that must not see what an integration session set."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def clean_settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [n for n in os.environ if n.startswith("CLIPSTREAM_")]:
        monkeypatch.delenv(name)
    yield
