"""What operators see, against the real stack: one upload is one trace in a real collector (Jaeger v2, built
from the Go module proxy and fed over OTLP by every service), with a span from every stage and each Kafka
hop a parent-child link; every metric the shipped dashboard and alert rules name is exported; the freshness
histogram, consumer lag and readiness gauges carry values."""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.settings import CommonSettings
from services.intake.watch import UploadWatch
from services.media.synthetic import write_clip
from tests.integration.conftest import GATEWAY_URL, JAEGER_URL, SEARCH_URL, TEST_ENV

CHART_FILES = Path(__file__).resolve().parents[2] / "helm" / "clipstream" / "files"
STAGES = ("gateway", "decoder", "embedder", "indexer", "enricher", "duplicates", "qc")
METRICS_URLS = {
    **{s: f"http://127.0.0.1:{TEST_ENV[f'CLIPSTREAM_{s.upper()}_HEALTH_PORT']}/metrics" for s in STAGES[1:]},
    "search": f"{SEARCH_URL}/metrics",
    "gateway": f"{GATEWAY_URL}/metrics",
    "triton": f"http://127.0.0.1:{TEST_ENV['CLIPSTREAM_STACK_TRITON_METRICS_PORT']}/metrics",
}


@pytest.fixture(scope="module")
def traced(common: CommonSettings, media_root: Path) -> dict[str, Any]:
    clip = write_clip(media_root / "traced" / "traced.mp4", seconds=6.0, seed=31, cuts=(3.0,))
    watch = UploadWatch(common)
    try:
        response = httpx.post(
            f"{GATEWAY_URL}/v1/videos",
            json={"uri": clip.resolve().as_uri(), "metadata": {"prompt": "a textured scene"}},
            headers={"Authorization": "Bearer gw-key-a"},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        event_id = response.json()["event_id"]
        assert event_id in watch.wait([event_id], 120).indexed
    finally:
        watch.close()
    return {"event_id": event_id, "video_id": response.json()["video_id"]}


def _trace(event_id: str) -> dict[str, Any] | None:
    tags = json.dumps({"clipstream.event_id": event_id})
    found = httpx.get(
        f"{JAEGER_URL}/api/traces",
        params={"service": "clipstream-gateway", "tags": tags, "lookback": "1h", "limit": 5},
        timeout=10,
    ).json()["data"]
    if not found:
        return None
    assert len({t["traceID"] for t in found}) == 1, "one upload, one trace"
    full = httpx.get(f"{JAEGER_URL}/api/traces/{found[0]['traceID']}", timeout=10).json()["data"]
    return dict(full[0])


def test_one_upload_is_one_trace_with_every_stage_linked_across_kafka(traced: dict[str, Any]) -> None:
    deadline = time.monotonic() + 90  # the stages export in batches; duplicates and QC run after indexing
    while True:
        trace = _trace(traced["event_id"])
        services = {p["serviceName"] for p in trace["processes"].values()} if trace else set()
        if {f"clipstream-{s}" for s in STAGES} <= services or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert trace is not None, "the collector received no trace of the upload"
    assert {f"clipstream-{s}" for s in STAGES} <= services, services
    spans = {s["spanID"]: s for s in trace["spans"]}
    service_of = {
        i: trace["processes"][s["processID"]]["serviceName"].removeprefix("clipstream-") for i, s in spans.items()
    }

    def parent(span_id: str) -> str | None:
        refs = [r["spanID"] for r in spans[span_id]["references"] if r["refType"] == "CHILD_OF"]
        return service_of.get(refs[0]) if refs else None

    by_stage: dict[str, list[str]] = defaultdict(list)
    for span_id, service in service_of.items():
        by_stage[service].append(span_id)
    (root,) = [i for i in spans if not spans[i]["references"]]
    assert service_of[root] == "gateway" and spans[root]["operationName"] == "POST /v1/videos"  # the request
    (publish,) = [i for i in by_stage["gateway"] if spans[i]["operationName"] == "gateway publish"]
    assert parent(publish) == "gateway"
    for span_id in by_stage["decoder"]:
        assert spans[span_id]["references"][0]["spanID"] == publish
    assert {parent(i) for i in by_stage["decoder"]} == {"gateway"}
    assert {parent(i) for i in by_stage["embedder"]} == {"decoder"}
    assert {parent(i) for i in by_stage["indexer"]} == {"embedder"}
    assert {parent(i) for i in by_stage["duplicates"]} == {"indexer"}
    assert {parent(i) for i in by_stage["qc"]} == {"indexer"}
    assert "indexer" in {parent(i) for i in by_stage["enricher"]}  # the acks of durable segments
    assert len(by_stage["embedder"]) == len(by_stage["indexer"]) >= 2  # one span a segment, each hop linked
    for span_id in by_stage["decoder"]:
        tags = {t["key"]: t["value"] for t in spans[span_id]["tags"]}
        assert tags["messaging.destination.name"] == "videos.uploaded" and tags["span.kind"] == "consumer"


def _exported(url: str) -> tuple[set[str], dict[str, list[tuple[str, float]]]]:
    """Metric names a scrape offers (with the suffixes of their types) and the samples by name."""
    names: set[str] = set()
    samples: dict[str, list[tuple[str, float]]] = defaultdict(list)
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
    for line in httpx.get(url, timeout=10).text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names |= {name, *(name + s for s in suffixes.get(kind, ()))}
        elif line and not line.startswith("#"):
            match = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
            if match:
                names.add(match[1])
                samples[match[1]].append((match[2] or "", float(match[3])))
    return names, samples


def test_the_dashboard_and_alert_rules_name_metrics_that_exist(traced: dict[str, Any]) -> None:
    exported: set[str] = set()
    scraped = {}
    for service, url in METRICS_URLS.items():
        names, samples = _exported(url)
        exported |= names
        scraped[service] = samples
    dashboard = json.loads((CHART_FILES / "grafana-dashboard.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queries.append((CHART_FILES / "alerts.rules.yaml").read_text())
    named = {m for q in queries for m in re.findall(r"\b((?:clipstream|nv)_[a-z_]+)\b", q)}
    assert len(named) >= 10
    assert named <= exported, f"named but not exported: {sorted(named - exported)}"

    freshness = scraped["indexer"]["clipstream_freshness_seconds_count"]
    assert freshness and freshness[0][1] >= 1  # the traced upload, observed once its transaction committed
    assert any('service="decoder"' in labels for labels, _ in scraped["decoder"]["clipstream_consumer_lag"])
    for service in (*STAGES, "search"):
        ready = dict(scraped[service]["clipstream_ready"])
        assert ready == {f'{{service="{service}"}}': 1.0}, (service, ready)
