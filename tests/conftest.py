"""Session-wide guards: CI never skips the shared-clip tests silently."""

from __future__ import annotations

import os

import pytest

from tests.clips import SHARED_VIDEOS, shared_clips


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI") and len(shared_clips()) < 5:
        raise pytest.UsageError(
            f"CI needs the shared clips at {SHARED_VIDEOS}: without them the tests on real clips would skip"
        )
