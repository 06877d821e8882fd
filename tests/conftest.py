"""Session-wide: CI never skips the shared-clip tests silently; the integration tests run on three stacks."""

from __future__ import annotations

import os

import pytest

from tests.clips import SHARED_VIDEOS, shared_clips


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI") and len(shared_clips()) < 5:
        raise pytest.UsageError(
            f"CI needs the shared clips at {SHARED_VIDEOS}: without them the tests on real clips would skip"
        )


# The integration tests run on three stacks, one per xdist worker (tests/integration/conftest.py shifts each
# worker's ports by 1000), split so each takes about as long (`pytest --durations`,
# bench/results/suite-durations.txt); the unit and deploy tests fill in whichever worker is done first.
STACK_OF_FILE = {
    **{f"tests/integration/{name}.py": "stack-2" for name in ("test_chaos", "test_gateway_front_door", "test_hostile")},
    **{f"tests/integration/{name}.py": "stack-3" for name in ("test_embedder_triton", "test_multipart")},
}
# the chaos scenarios that restart infrastructure (the slow ones) run on the third stack
STACK_OF_CHAOS = {f"[{fault}]": "stack-3" for fault in ("kafka", "kafka-paused", "triton", "milvus")}
# integration files that start servers of their own and never touch a stack: they run beside the stacks
OWN_SERVERS = frozenset({"tests/integration/test_milvus_backends.py"})
# reindex re-decodes the whole catalogue in this process: first on its stack, while the catalogue is small;
# the Milvus contract first on the unit worker, its server's start-up beside the stacks' (not after them)
FIRST = ("tests/integration/test_reindex.py", *OWN_SERVERS)


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: _file_of(item.nodeid) not in FIRST)  # stable: file order otherwise


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Each stack's integration tests on one worker, in file order: they share that worker's session stack.
    (xdist's own `loadgroup` marks do not group under pytest 9, whose node ids ignore the suffix.)"""
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerPerStack(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = _file_of(nodeid)
            if not path.startswith("tests/integration/") or path in OWN_SERVERS:
                return nodeid
            param = nodeid[nodeid.find("[") :] if nodeid.endswith("]") else ""
            if path == "tests/integration/test_chaos.py" and param in STACK_OF_CHAOS:
                return STACK_OF_CHAOS[param]
            return STACK_OF_FILE.get(path, "stack-1")

    return OneWorkerPerStack(config, log)
