"""Every service the stack starts gets a port of its own in each test stack: three stacks run side by side,
and a service left on its default port binds it in one stack and crash-loops in the others."""

from __future__ import annotations

from services.stack.manager import SERVICES
from tests.integration.conftest import TEST_ENV


def test_every_service_port_is_set_per_test_stack() -> None:
    missing = {var for _, var, _ in SERVICES.values()} - set(TEST_ENV)
    assert not missing, f"set these in tests/integration/conftest.py TEST_ENV with port(...): {sorted(missing)}"
    ports = [TEST_ENV[var] for _, var, _ in SERVICES.values()]
    assert len(set(ports)) == len(ports), "two services on one port"
