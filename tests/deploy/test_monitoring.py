"""The chart's dashboard and alert rules are valid for the tools that load them: `promtool` checks the rules
file and every dashboard query (as recording rules), and the chart ships exactly these files. Each alert the
chart renders is run by `promtool test rules` over series that must fire it and series that must not, so a
flipped comparison, another quantile or a condition that cannot hold fails here, not in production. That they
name metrics the services export is checked against the running stack (tests/integration/test_observability.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_helm_chart import CHART, REQUIRED, by_kind, helm, render

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "helm" / "clipstream" / "files"
PROMTOOL = Path(sys.executable).parent / "promtool"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL.is_file(), f"promtool is built by scripts/bootstrap.sh into {PROMTOOL}"
    return subprocess.run([str(PROMTOOL), *args], capture_output=True, text=True, timeout=60, check=False)


def test_the_alert_rules_pass_promtool() -> None:
    result = promtool("check", "rules", str(FILES / "alerts.rules.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = [
        r["alert"] for g in yaml.safe_load((FILES / "alerts.rules.yaml").read_text())["groups"] for r in g["rules"]
    ]
    # what an operator must hear about: lag, dead letters, freshness, Triton's queue, readiness
    assert {"ClipstreamConsumerLagGrowing", "ClipstreamDeadLetterRate", "ClipstreamFreshnessSLO"} <= set(alerts)
    assert {"ClipstreamTritonQueueTime", "ClipstreamNotReady"} <= set(alerts)


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    dashboard = json.loads((FILES / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10 and len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"q:{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_chart_ships_the_dashboard_and_rules_it_was_given() -> None:
    docs = render("--set", "monitoring.prometheusRule.enabled=true", "--set", "monitoring.podMonitor.enabled=true")
    (config,) = [c for n, c in by_kind(docs, "ConfigMap").items() if n.endswith("-dashboard")]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config["data"]["clipstream-pipeline.json"]) == json.loads(
        (FILES / "grafana-dashboard.json").read_text()
    )
    (rule,) = by_kind(docs, "PrometheusRule").values()
    assert rule["spec"] == yaml.safe_load((FILES / "alerts.rules.yaml").read_text())
    (monitor,) = by_kind(docs, "PodMonitor").values()
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} == {"health", "http", "metrics"}
    assert not by_kind(render(), "PrometheusRule")  # off unless the operator's CRDs are there


# --- the alerts' behaviour: promtool test rules on the rendered PrometheusRule -------------------------------

POD = {"namespace": "clipstream", "pod": "cs-clipstream-decoder-7d9f-x2x4k", "container": "decoder"}
KSM = {"job": "kube-state-metrics", "namespace": "clipstream"}


def _series(metric: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{metric}{{{inner}}}", "values": values}


def _case(name: str, at: str, series: list[dict[str, str]], fired: list[tuple[dict[str, str], str]]) -> dict[str, Any]:
    """One promtool test: the series, when to evaluate, and the alerts that must be firing then (labels and
    rendered summary; an empty list is a quiet case)."""
    return {"name": name, "at": at, "series": series, "fired": fired}


def _lag(values: str) -> list[dict[str, str]]:
    return [
        _series(
            "clipstream_consumer_lag", {**POD, "service": "decoder", "topic": "videos.uploaded", "partition": p}, values
        )
        for p in ("0", "1")
    ]


def _freshness(per_minute: dict[str, int]) -> list[dict[str, str]]:
    return [
        _series("clipstream_freshness_seconds_bucket", {**POD, "le": le}, f"0+{n}x60") for le, n in per_minute.items()
    ]


def _dead_letters(values: str) -> list[dict[str, str]]:
    return [_series("clipstream_dead_letters_total", {**POD, "service": "decoder", "reason": "corrupt_video"}, values)]


def _ready(values: str) -> dict[str, str]:
    return _series("clipstream_ready", {**POD, "service": "decoder"}, values)


def _unavailable(deployment: str, values: str) -> dict[str, str]:
    """kube-state-metrics' count of a Deployment's replicas that are not available (missing ones included)."""
    return _series("kube_deployment_status_replicas_unavailable", {**KSM, "deployment": deployment}, values)


def _triton(queued_us_per_minute: int, requests_per_minute: int) -> list[dict[str, str]]:
    triton = {"namespace": "clipstream", "pod": "cs-clipstream-triton-0", "model": "clip_image", "version": "1"}
    return [
        _series("nv_inference_queue_duration_us", triton, f"0+{queued_us_per_minute}x40"),
        _series("nv_inference_request_success", triton, f"0+{requests_per_minute}x40"),
    ]


GONE = "replica(s) unavailable (gone, crashed or not ready): it cannot make progress"
DECODER_LAG = {"service": "decoder", "topic": "videos.uploaded"}
CASES: dict[str, list[dict[str, Any]]] = {
    "ClipstreamConsumerLagGrowing": [
        _case(
            "lag 3000 and growing",
            "30m",
            _lag("0+50x40"),
            [(DECODER_LAG, "decoder is 3000 messages behind on videos.uploaded and falling further behind")],
        ),
        _case("lag high but flat", "30m", _lag("1500x40"), []),
        _case("lag high but shrinking", "30m", _lag("3000-50x40"), []),
        _case("lag growing but under 500", "30m", _lag("0+5x40"), []),
    ],
    "ClipstreamDeadLetterRate": [
        _case(
            "0.1 dead letters a second",
            "30m",
            _dead_letters("0+6x40"),
            [({"service": "decoder", "reason": "corrupt_video"}, "decoder dead-letters 100m/s (corrupt_video)")],
        ),
        _case("one a minute", "30m", _dead_letters("0+1x40"), []),
    ],
    "ClipstreamFreshnessSLO": [
        # 95 % within a minute, the slowest 5 % at 5-10 min: the median is fine, the p99 (540 s) breaks the SLO
        _case(
            "p99 9 minutes",
            "40m",
            _freshness({"60": 95, "300": 95, "600": 100, "+Inf": 100}),
            [({}, "p99 upload-to-searchable time is 9m 0s (SLO 5m)")],
        ),
        _case("p99 under a minute", "40m", _freshness({"60": 995, "300": 1000, "600": 1000, "+Inf": 1000}), []),
    ],
    "ClipstreamTritonQueueTime": [
        _case(
            "100 ms a request",
            "30m",
            _triton(6_000_000, 60),
            [({"model": "clip_image"}, "Triton requests to clip_image wait 100k us in its queue")],
        ),
        _case("1 ms a request", "30m", _triton(60_000, 60), []),
        _case("idle", "30m", _triton(0, 0), []),
    ],
    "ClipstreamNotReady": [
        _case(
            "a replica says it is not ready",
            "10m",
            [_ready("0x20")],
            [
                (
                    {"service": "decoder", "pod": POD["pod"]},
                    f"decoder ({POD['pod']}) is not ready: it cannot make progress",
                )
            ],
        ),
        _case(
            "ready, and every replica available",
            "10m",
            [_ready("1x20"), _unavailable("cs-clipstream-decoder", "0x20")],
            [],
        ),
        # the pod is killed at 5 min and its replacement never becomes ready: its series end, Kubernetes counts it
        _case(
            "a replica is gone",
            "15m",
            [_ready("1x5 stale"), _unavailable("cs-clipstream-decoder", "0x5 1x20")],
            [
                (
                    {"service": "decoder", "namespace": "clipstream", "deployment": "cs-clipstream-decoder"},
                    f"decoder has 1 {GONE}",
                )
            ],
        ),
        _case("another application's replica is gone", "15m", [_unavailable("web-frontend", "1x20")], []),
    ],
}


def _rules(tmp_path: Path, *args: str) -> tuple[Path, dict[str, dict[str, Any]]]:
    """The rules as the chart renders them into its PrometheusRule, written where promtool reads them."""
    (rule,) = by_kind(render("--set", "monitoring.prometheusRule.enabled=true", *args), "PrometheusRule").values()
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    return path, {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}


def _promtool_test(tmp_path: Path, rules: Path, tests: list[dict[str, Any]]) -> None:
    path = tmp_path / "tests.yaml"
    path.write_text(yaml.safe_dump({"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": tests}))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def _promtool_case(alert: str, rule: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    fired = [
        {
            "exp_labels": {**labels, **rule["labels"]},
            "exp_annotations": {"summary": summary, "runbook": rule["annotations"]["runbook"]},
        }
        for labels, summary in case["fired"]
    ]
    return {
        "name": f"{alert}: {case['name']}",
        "interval": "1m",
        "input_series": case["series"],
        "alert_rule_test": [{"eval_time": case["at"], "alertname": alert, "exp_alerts": fired}],
    }


def test_every_alert_has_a_firing_and_a_quiet_case(tmp_path: Path) -> None:
    _, alerts = _rules(tmp_path)
    assert set(CASES) == set(alerts)
    for alert, cases in CASES.items():
        assert any(c["fired"] for c in cases) and any(not c["fired"] for c in cases), alert


@pytest.mark.parametrize("alert", sorted(CASES))
def test_the_alert_fires_exactly_when_it_should(tmp_path: Path, alert: str) -> None:
    rules, alerts = _rules(tmp_path)
    _promtool_test(tmp_path, rules, [_promtool_case(alert, alerts[alert], c) for c in CASES[alert]])


@pytest.mark.parametrize("release", ["cs", "clipstream", "clipstream-prod"])
def test_a_vanished_replica_of_any_component_fires_not_ready(tmp_path: Path, release: str) -> None:
    """Every Deployment the chart renders, under any release name, is matched and named by its component: a
    pod gone from any of them leaves only Kubernetes' count of unavailable replicas to alert on."""
    rendered = helm("template", release, str(CHART), *REQUIRED)
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    deployments = {
        n: d["metadata"]["labels"]["app.kubernetes.io/component"] for n, d in by_kind(docs, "Deployment").items()
    }
    assert {"decoder", "embedder", "indexer", "search", "gateway", "triton"} <= set(deployments.values())
    rules, alerts = _rules(tmp_path)
    series = [_unavailable(n, "0x5 2x20") for n in deployments]
    fired = [
        ({"service": c, "namespace": "clipstream", "deployment": n}, f"{c} has 2 {GONE}")
        for n, c in deployments.items()
    ]
    case = _case(f"every Deployment of release {release}", "15m", series, fired)
    _promtool_test(tmp_path, rules, [_promtool_case("ClipstreamNotReady", alerts["ClipstreamNotReady"], case)])
