"""Milvus Lite as a local server: a Lite `.db` admits one process, and indexer and search are two."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlparse

from services.stack.process import Proc, port_open, wait_until
from services.stack.settings import StackSettings


def start_milvus_lite(settings: StackSettings) -> Proc:
    proc = Proc("milvus", settings.run_dir)
    url = urlparse(settings.common.milvus_uri)
    host, port = url.hostname or settings.host, url.port or 19530
    if not proc.running():
        data = settings.data_dir / "milvus"
        data.mkdir(parents=True, exist_ok=True)
        cli = Path(sys.executable).parent / "milvus-lite"
        proc.start([str(cli), "server", "--data-dir", str(data), "--host", host, "--port", str(port)])
    wait_until(lambda: port_open(host, port), proc, f"Milvus Lite on {host}:{port}", 60)
    return proc
