"""The vector store contract (tests/store_contract.py) on both backends the product supports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests import store_contract

ROOT = Path(__file__).resolve().parents[2]


def test_store_contract_on_milvus_lite() -> None:
    store_contract.check_on_private_lite()


def test_store_contract_on_milvus_2_3_server() -> None:
    """milvus==2.3.5 binds every interface, so it runs in a network namespace that has only loopback."""
    script = f"ip link set lo up && exec {sys.executable} -m tests.store_contract --server"
    result = subprocess.run(
        ["unshare", "--net", "--", "bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "store contract passed on milvus 2.3.5" in result.stdout
