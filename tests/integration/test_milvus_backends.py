"""The vector store contract (tests/store_contract.py) on both backends the product supports."""

from __future__ import annotations

from services.stack.milvus import run_in_loopback_netns
from tests import store_contract


def test_store_contract_on_milvus_lite() -> None:
    store_contract.check_on("lite")


def test_store_contract_on_milvus_2_3_server() -> None:
    """milvus==2.3.5 binds every interface, so it runs in a network namespace that has only loopback."""
    result = run_in_loopback_netns(["tests.store_contract", "standalone"], capture=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "store contract passed on standalone" in result.stdout
