"""Services that only name a model start without torch (its import costs each replica ~4 CPU-s at every start):
torch is loaded where a model runs in-process (Triton's stubs, reindex, the in-process fallback), when it runs."""

from __future__ import annotations

import json
import subprocess
import sys

from services.stack.manager import SERVICES

# one interpreter imports every service's entry module in turn and names the first that brought torch in
PROBE = """
import importlib, json, sys
for module in json.loads(sys.argv[1]):
    try:
        importlib.import_module(module + ".__main__")
    except ModuleNotFoundError as exc:
        if exc.name != module + ".__main__":
            raise
        importlib.import_module(module)
    if "torch" in sys.modules:
        print(module)
        break
"""


def test_no_service_imports_torch_at_start() -> None:
    modules = [module for module, _, _ in SERVICES.values()]
    assert "services.search" in modules and "services.embedder" in modules
    found = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(modules)], capture_output=True, text=True, check=True, timeout=120
    )
    assert found.stdout.strip() == "", f"{found.stdout.strip()} imports torch at start"
