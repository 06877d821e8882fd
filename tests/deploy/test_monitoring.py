"""The chart's dashboard and alert rules are valid for the tools that load them: `promtool` checks the rules
file and every dashboard query (as recording rules), and the chart ships exactly these files. That they name
metrics the services export is checked against the running stack (tests/integration/test_observability.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.deploy.test_helm_chart import by_kind, render

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
