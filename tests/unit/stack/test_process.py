"""The local stack never mistakes a stranger on its port (a leftover of a killed run) for its own server."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from services.stack.process import Proc, StackError


def test_a_port_held_by_another_process_is_refused(tmp_path: Path) -> None:
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        port = stranger.getsockname()[1]
        proc = Proc("server", tmp_path)
        with pytest.raises(StackError, match=f"127.0.0.1:{port} already in use"):
            proc.start(["sleep", "30"], ports=[("127.0.0.1", port)])
        assert not proc.running()


def test_a_free_port_starts_the_process(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = Proc("server", tmp_path)
    try:
        assert proc.start(["sleep", "30"], ports=[("127.0.0.1", port)]) > 0
        assert proc.running()
    finally:
        proc.stop()
