"""Starts the real stack (Kafka, Triton, Milvus Lite, the services) once per test session (per xdist worker).

It runs on its own loopback ports and state folder, so a developer's running stack is left alone.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clips import SHARED_VIDEOS

# Each xdist worker that runs integration tests boots a stack of its own (tests/conftest.py splits the tests
# over three): every loopback port of worker gwN's stack is N * 1000 above gw0's (none of the shifted ranges
# meet: 24-31k, 38-40k, 9-11k).
PORT_SHIFT = 1000 * int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


def port(base: int) -> int:
    return base + PORT_SHIFT


TEST_ENV = {
    "CLIPSTREAM_KAFKA_BOOTSTRAP": f"127.0.0.1:{port(29092)}",
    "CLIPSTREAM_STACK_KAFKA_CONTROLLER_PORT": f"{port(29093)}",
    "CLIPSTREAM_TRITON_HTTP_URL": f"127.0.0.1:{port(28000)}",
    "CLIPSTREAM_TRITON_GRPC_URL": f"127.0.0.1:{port(28001)}",
    "CLIPSTREAM_STACK_TRITON_METRICS_PORT": f"{port(28002)}",
    "CLIPSTREAM_MILVUS_URI": f"http://127.0.0.1:{port(29530)}",
    "CLIPSTREAM_KAFKA_SESSION_TIMEOUT_MS": "6000",
    "CLIPSTREAM_KAFKA_TRANSACTION_TIMEOUT_MS": "10000",
    "CLIPSTREAM_KAFKA_CALL_TIMEOUT_S": "10",
    # transient failures: ~20 s of tries (outlasting a restart of Triton or Milvus), then the dead letter
    "CLIPSTREAM_RETRY_MAX_ATTEMPTS": "8",
    "CLIPSTREAM_RETRY_BACKOFF_MAX_S": "5",
    "CLIPSTREAM_DECODER_HEALTH_PORT": f"{port(9201)}",
    "CLIPSTREAM_EMBEDDER_HEALTH_PORT": f"{port(9202)}",
    "CLIPSTREAM_INDEXER_HEALTH_PORT": f"{port(9203)}",
    "CLIPSTREAM_ENRICHER_HEALTH_PORT": f"{port(9204)}",
    "CLIPSTREAM_DUPLICATES_HEALTH_PORT": f"{port(9207)}",
    "CLIPSTREAM_QC_HEALTH_PORT": f"{port(9208)}",
    "CLIPSTREAM_WEBHOOKS_HEALTH_PORT": f"{port(9209)}",
    "CLIPSTREAM_OCR_HEALTH_PORT": f"{port(9214)}",
    # loopback receivers of the webhook tests; retries every few seconds so a receiver that was down catches up
    "CLIPSTREAM_WEBHOOKS_ALLOWED_URL_PREFIXES": json.dumps(
        [f"http://127.0.0.1:{port(p)}/" for p in (28471, 28472, 28473)]
    ),
    "CLIPSTREAM_WEBHOOKS_RETRY_INITIAL_S": "1",
    "CLIPSTREAM_WEBHOOKS_RETRY_FACTOR": "2",
    "CLIPSTREAM_WEBHOOKS_RETRY_MAX_S": "4",
    "CLIPSTREAM_WEBHOOKS_MAX_ATTEMPTS": "40",
    "CLIPSTREAM_SEARCH_PORT": f"{port(28080)}",
    "CLIPSTREAM_SEARCH_API_KEYS": json.dumps(
        {
            "key-a": "tenant-a",
            "key-b": "tenant-b",
            "key-semantic": "semantic",
            "key-player": "player",
            "key-dups": "dups",
            "key-agents": "agents",
            "key-gen": "gen",
            "key-qc": "qc",
            "key-page": "page",
            "key-text": "text",
            "key-faces": "faces",
        }
    ),
    "CLIPSTREAM_GATEWAY_PORT": f"{port(28090)}",
    "CLIPSTREAM_GATEWAY_API_KEYS": json.dumps(
        {
            "gw-key-a": "gw-a",
            "key-page": "page",  # the page uploads through the gateway with its search key
            "gw-key-b": "gw-b",
            "key-player": "player",
            "key-dups": "dups",
            "gw-key-door": "gw-door",
            "gw-key-chaos": "gw-chaos",
            "gw-key-list": "gw-list",
            "hook-key-a": "hooks-a",
            "hook-key-b": "hooks-b",
            "gw-key-multi": "gw-multi",
            "gw-key-multi-b": "gw-multi-b",
        }
    ),
    "CLIPSTREAM_GATEWAY_MAX_UPLOAD_BYTES": str(8 * 1024**2),
    # direct uploads: presigned URLs name the store as a client would (another spelling than the gateway's own)
    "CLIPSTREAM_GATEWAY_S3_PUBLIC_URL": f"http://localhost:{port(28333)}",
    "CLIPSTREAM_GATEWAY_MAX_MULTIPART_BYTES": str(3 * 1024**3),
    "CLIPSTREAM_CLIP_MODEL": "",
    # a real S3 (SeaweedFS) for s3:// sources; its filer doubles as the allowed http:// origin
    "CLIPSTREAM_STACK_SEAWEEDFS": "true",
    "CLIPSTREAM_STACK_SEAWEEDFS_BASE_PORT": f"{port(28330)}",
    "CLIPSTREAM_STACK_S3_PORT": f"{port(28333)}",
    "CLIPSTREAM_STACK_S3_ACCESS_KEY": "test-access-key",
    "CLIPSTREAM_STACK_S3_SECRET_KEY": "test-secret-key",
    "CLIPSTREAM_STACK_S3_BUCKETS": '["uploads"]',
    "CLIPSTREAM_DECODER_S3_ENDPOINT_URL": f"http://127.0.0.1:{port(28333)}",
    # the gateway's own upload prefix is listed too: the stack adds it to the decoder's variables, and the
    # tests that decode in this process (reindex) must see the decoder's allowlist exactly
    "CLIPSTREAM_DECODER_S3_PREFIXES": '["s3://uploads/allowed/", "s3://uploads/inbox/", "s3://uploads/gateway/"]',
    # object-store notifications: SeaweedFS's filer publishes its changes, routes map prefixes to tenants
    "CLIPSTREAM_STACK_SEAWEEDFS_NOTIFY_TOPIC": "objectstore.events",
    "CLIPSTREAM_NOTIFICATIONS_TOPIC": "objectstore.events",
    "CLIPSTREAM_NOTIFICATIONS_HEALTH_PORT": f"{port(9206)}",
    "CLIPSTREAM_NOTIFICATIONS_ROUTES": json.dumps(
        [
            {"bucket": "uploads", "prefix": "inbox/notify-a", "tenant": "notify-a", "creator": "inbox"},
            {"bucket": "uploads", "prefix": "inbox/notify-b", "tenant": "notify-b", "creator": "inbox"},
        ]
    ),
    "CLIPSTREAM_DECODER_S3_ACCESS_KEY": "test-access-key",
    "CLIPSTREAM_DECODER_S3_SECRET_KEY": "test-secret-key",
    # the filer's public folder, and the hostile suite's own misbehaving HTTP server
    "CLIPSTREAM_DECODER_HTTP_PREFIXES": json.dumps(
        [f"http://127.0.0.1:{port(28332)}/public/", f"http://127.0.0.1:{port(28399)}/hostile/"]
    ),
    # limits low enough that the tests can cross each one with a small file
    "CLIPSTREAM_DECODER_MAX_BYTES": str(64 * 1024**2),
    "CLIPSTREAM_DECODER_MAX_DURATION_S": "120",
    "CLIPSTREAM_DECODER_MAX_PIXELS": str(1920 * 1088),
    # traces: every service exports OTLP (the standard variables) to the session's collector
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port(24318)}",
    "OTEL_BSP_SCHEDULE_DELAY": "500",
}
FILER_URL = f"http://127.0.0.1:{port(28332)}"
HOSTILE_HTTP_PORT = port(28399)
SEARCH_URL = f"http://127.0.0.1:{port(28080)}"
GATEWAY_URL = f"http://127.0.0.1:{port(28090)}"
S3_URL = f"http://127.0.0.1:{port(28333)}"
NOTIFY_TOPIC = "objectstore.events"
JAEGER = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "jaeger"
JAEGER_CONFIG = Path(__file__).with_name("jaeger.yaml")
JAEGER_URL = f"http://127.0.0.1:{port(26686)}"


@pytest.fixture(scope="session")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder the decoder may read besides the shared clips: tests write their bad inputs here."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, media_root: Path) -> Iterator[object]:
    from services.stack import manager
    from services.stack.process import Proc, http_ok, wait_until
    from services.stack.settings import StackSettings

    home = tmp_path_factory.mktemp("clipstream-home")
    roots = [str(media_root)] + ([str(SHARED_VIDEOS)] if SHARED_VIDEOS.is_dir() else [])
    env = {**TEST_ENV, "CLIPSTREAM_HOME": str(home), "CLIPSTREAM_DECODER_ALLOWED_ROOTS": json.dumps(roots)}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = StackSettings()
        assert JAEGER.is_file(), f"the trace collector is built by scripts/bootstrap.sh into {JAEGER}"
        collector = Proc("jaeger", settings.run_dir)
        try:
            config = home / "jaeger.yaml"  # the collector's ports, shifted as this worker's
            config.write_text(
                re.sub(r"127\.0\.0\.1:(\d+)", lambda m: f"127.0.0.1:{port(int(m[1]))}", JAEGER_CONFIG.read_text())
            )
            collector.start(
                [str(JAEGER), "--config", str(config)],
                env={"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "none"},  # it does not trace itself
                ports=[("127.0.0.1", port(24318)), ("127.0.0.1", port(26686))],
            )
            wait_until(lambda: http_ok(f"{JAEGER_URL}/api/services"), collector, "the Jaeger collector", 60)
            manager.up(settings)
            yield settings
        finally:
            manager.down(settings)
            collector.stop()
            for log in sorted((home / "run").glob("*.log")):
                tail = log.read_text(errors="replace").splitlines()[-15:]
                print(f"--- {log.name} (tail)", *tail, sep="\n")


@pytest.fixture(scope="session")
def common(stack: object) -> object:
    return stack.common  # type: ignore[attr-defined]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
