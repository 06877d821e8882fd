"""Session-wide: CI never skips the shared-clip tests silently; the integration tests share one worker."""

from __future__ import annotations

import os

import pytest

from tests.clips import SHARED_VIDEOS, shared_clips


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI") and len(shared_clips()) < 5:
        raise pytest.UsageError(
            f"CI needs the shared clips at {SHARED_VIDEOS}: without them the tests on real clips would skip"
        )


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Every integration test on one worker, in file order: they share one session stack on fixed loopback
    ports. (xdist's own `loadgroup` marks do not group under pytest 9, whose node ids ignore the suffix.)"""
    from xdist.scheduler import LoadScopeScheduling

    class StackOnOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "stack" if nodeid.startswith("tests/integration/") else nodeid

    return StackOnOneWorker(config, log)
