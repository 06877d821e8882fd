"""The Helm chart renders, and what it renders agrees with the code: every CLIPSTREAM_* variable is a
real setting that parses, secrets only come from Secrets, probes hit the ports the services serve, and
autoscalers watch the topics and consumer groups the services use."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from services.common.messages import Topics
from services.common.settings import CommonSettings
from services.decoder.settings import DecoderSettings
from services.duplicates.settings import DuplicatesSettings
from services.embedder.settings import EmbedderSettings
from services.enricher.settings import EnricherSettings
from services.gateway.notifications import NotificationSettings
from services.gateway.settings import GatewaySettings
from services.indexer.settings import IndexerSettings
from services.ocr.settings import OcrSettings
from services.qc.settings import QcSettings
from services.search.settings import SearchSettings
from services.stack.settings import StackSettings
from services.webhooks.settings import WebhooksSettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "clipstream"
HELM = Path(sys.executable).parent / "helm"
REQUIRED = [
    "--set",
    "search.apiKeysSecret.name=keys",
    "--set",
    "gateway.apiKeysSecret.name=keys",
    "--set",
    "models.existingClaim=models",
    "--set",
    "webhooks.secretKeySecret.name=webhooks-key",
]
SETTINGS: dict[str, type[BaseSettings]] = {
    "decoder": DecoderSettings,
    "embedder": EmbedderSettings,
    "indexer": IndexerSettings,
    "enricher": EnricherSettings,
    "duplicates": DuplicatesSettings,
    "ocr": OcrSettings,
    "qc": QcSettings,
    "search": SearchSettings,
    "gateway": GatewaySettings,
    "webhooks": WebhooksSettings,
    "triton": StackSettings,
}


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM.is_file(), f"helm is installed by scripts/bootstrap.sh into {HELM}"
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120, check=False)


def render(*args: str) -> list[dict[str, Any]]:
    result = helm("template", "cs", str(CHART), *REQUIRED, *args)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            for c in d["spec"]["template"]["spec"]["containers"]:
                yield d["metadata"]["name"], c


def env_names(settings: type[BaseSettings], prefix: str) -> dict[str, Any]:
    """Env var name -> field annotation, following nested settings blocks (their own prefix applies)."""
    names: dict[str, Any] = {}
    for name, field in settings.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings):
            names |= env_names(field.annotation, field.annotation.model_config.get("env_prefix", ""))
        else:
            names[f"{prefix}{name}".upper()] = field.annotation
    return names


def test_chart_lints() -> None:
    result = helm("lint", "--strict", str(CHART), *REQUIRED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_variable_is_a_setting_that_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(
        "--set",
        "decoder.httpPrefixes={https://cdn.example.com/videos/}",
        "--set",
        "search.gatewayUrl=https://upload.example.com",
        "--set",
        "gateway.corsOrigins={https://search.example.com}",
    )
    common = by_kind(docs, "ConfigMap")["cs-clipstream-common"]["data"]
    for deployment, container in containers(docs):
        component = deployment.removeprefix("cs-clipstream-")
        settings = SETTINGS.get(component, CommonSettings)
        known = env_names(settings, settings.model_config.get("env_prefix", ""))
        known |= env_names(CommonSettings, "CLIPSTREAM_")
        literal = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
        for name in [*common, *(e["name"] for e in container.get("env", []))]:
            if name.startswith("CLIPSTREAM_"):
                assert name in known, f"{deployment}: {name} is not a setting of {settings.__name__}"
        for name in {**common, **literal}:
            monkeypatch.delenv(name, raising=False)
        for name, value in {**common, **literal}.items():
            monkeypatch.setenv(name, str(value))
        parsed = settings()  # raises if any value does not parse
        if component == "decoder":
            assert isinstance(parsed, DecoderSettings)
            assert parsed.health_host == "0.0.0.0" and parsed.http_prefixes == ["https://cdn.example.com/videos/"]
            assert parsed.common.topic_replication_factor == 3


def test_secrets_come_only_from_secrets() -> None:
    docs = render(
        "--set",
        "milvus.tokenSecret.name=milvus",
        "--set",
        "decoder.s3CredentialsSecret.name=s3",
    )
    every: list[type[BaseSettings]] = [*SETTINGS.values(), CommonSettings]
    secret_fields = {
        name
        for settings in every
        for name, annotation in env_names(settings, settings.model_config.get("env_prefix", "")).items()
        if "SecretStr" in str(annotation) or name.endswith("API_KEYS")
    }
    wanted = {
        "CLIPSTREAM_MILVUS_TOKEN",
        "CLIPSTREAM_SEARCH_API_KEYS",
        "CLIPSTREAM_DECODER_S3_SECRET_KEY",
        "CLIPSTREAM_WEBHOOKS_SECRET_KEY",
    }
    assert wanted <= secret_fields
    seen = set()
    for deployment, container in containers(docs):
        for e in container.get("env", []):
            if e["name"] in secret_fields:
                assert "secretKeyRef" in e.get("valueFrom", {}), f"{deployment}: {e['name']} must come from a Secret"
                seen.add(e["name"])
    for cm in by_kind(docs, "ConfigMap").values():
        assert not secret_fields & set(cm["data"])
    assert wanted <= seen


def test_probes_hit_the_ports_the_services_serve() -> None:
    docs = render()
    ports = {
        "decoder": DecoderSettings().health_port,
        "embedder": EmbedderSettings().health_port,
        "indexer": IndexerSettings().health_port,
        "enricher": EnricherSettings().health_port,
        "duplicates": DuplicatesSettings().health_port,
        "ocr": OcrSettings().health_port,
        "qc": QcSettings().health_port,
        "search": SearchSettings().port,
        "gateway": GatewaySettings().port,
        "webhooks": WebhooksSettings().health_port,
    }
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == {f"cs-clipstream-{c}" for c in [*ports, "triton"]}
    for name, d in deployments.items():
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (c,) = pod["containers"]
        named = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert c[probe]["httpGet"]["port"] in named, f"{name} {probe}"
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
        component = name.removeprefix("cs-clipstream-")
        if component in ports:
            assert named[c["readinessProbe"]["httpGet"]["port"]] == ports[component]
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert c["args"][:2] == ["-m", f"services.{component}"]
    triton = deployments["cs-clipstream-triton"]["spec"]["template"]["spec"]["containers"][0]
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {p["containerPort"] for p in triton["ports"]} == {8000, 8001, 8002}


def test_components_scale_on_their_own_topic_and_group() -> None:
    consumers = ("decoder", "embedder", "indexer", "enricher", "duplicates", "ocr", "qc", "webhooks")
    docs = render(*[arg for c in consumers for arg in ("--set", f"{c}.autoscaling.enabled=true")])
    scaled = by_kind(docs, "ScaledObject")
    backfill = {  # a reindex's backlog scales the stages that serve it, each its own topic and group
        "decoder": (Topics.BACKFILL, DecoderSettings().backfill_group_id),
        "embedder": (Topics.BACKFILL_SEGMENTS, EmbedderSettings().backfill_group_id),
        "indexer": (Topics.BACKFILL_EMBEDDINGS, IndexerSettings().backfill_group_id),
    }
    expected = {
        "decoder": (Topics.UPLOADED, DecoderSettings().group_id),
        "embedder": (Topics.SEGMENTS, EmbedderSettings().group_id),
        "indexer": (Topics.EMBEDDINGS, IndexerSettings().group_id),
        "enricher": (Topics.SEGMENTS_INDEXED, EnricherSettings().group_id),
        "duplicates": (Topics.INDEXED, DuplicatesSettings().group_id),
        "ocr": (Topics.SEGMENTS, OcrSettings().group_id),
        "qc": (Topics.INDEXED, QcSettings().group_id),
        "webhooks": (Topics.STATUS, WebhooksSettings().group_id),
    }
    assert set(scaled) == {f"cs-clipstream-{c}" for c in expected}
    deployments = by_kind(docs, "Deployment")
    for component, (topic, group) in expected.items():
        triggers = [t["metadata"] for t in scaled[f"cs-clipstream-{component}"]["spec"]["triggers"]]
        wanted = [(topic, group), *([backfill[component]] if component in backfill else [])]
        assert [(t["topic"], t["consumerGroup"]) for t in triggers] == wanted
        assert "replicas" not in deployments[f"cs-clipstream-{component}"]["spec"]  # KEDA owns the count


def test_the_notifications_consumer_is_opt_in_and_needs_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "cs-clipstream-notifications" not in by_kind(render(), "Deployment")
    routes = '[{"bucket": "uploads", "prefix": "inbox/a", "tenant": "a"}]'
    docs = render("--set", "notifications.enabled=true", "--set-json", f"notifications.routes={routes}")
    (container,) = by_kind(docs, "Deployment")["cs-clipstream-notifications"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    monkeypatch.setenv("CLIPSTREAM_NOTIFICATIONS_ROUTES", env["CLIPSTREAM_NOTIFICATIONS_ROUTES"])
    assert NotificationSettings().routes[0].tenant == "a"
    result = helm("template", "cs", str(CHART), *REQUIRED, "--set", "notifications.enabled=true")
    assert result.returncode != 0 and "notifications.routes" in result.stderr


def test_values_override_per_component() -> None:
    docs = by_kind(render("--set", "decoder.replicas=7", "--set", "search.replicas=3"), "Deployment")
    assert docs["cs-clipstream-decoder"]["spec"]["replicas"] == 7
    assert docs["cs-clipstream-search"]["spec"]["replicas"] == 3
    assert docs["cs-clipstream-embedder"]["spec"]["replicas"] == 2


WEBHOOKS_KEY = ["--set", "webhooks.secretKeySecret.name=w"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [*WEBHOOKS_KEY, "--set", "models.existingClaim=m", "--set", "gateway.apiKeysSecret.name=k"],
            "search.apiKeysSecret.name",
        ),
        (
            [*WEBHOOKS_KEY, "--set", "models.existingClaim=m", "--set", "search.apiKeysSecret.name=k"],
            "gateway.apiKeysSecret.name",
        ),
        (
            [*WEBHOOKS_KEY, "--set", "search.apiKeysSecret.name=k", "--set", "gateway.apiKeysSecret.name=k"],
            "models.existingClaim",
        ),
        (REQUIRED[:-2], "webhooks.secretKeySecret.name"),
        ([*REQUIRED, "--set", "decoder.replicas=30"], "decoder.replicas (30) exceeds kafka.topicPartitions (24)"),
    ],
)
def test_bad_values_fail_with_a_precise_message(args: list[str], message: str) -> None:
    result = helm("template", "cs", str(CHART), *args)
    assert result.returncode != 0 and message in result.stderr


def test_plain_manifests_match_the_chart() -> None:
    """k8s/ holds the chart rendered with k8s/values.yaml, for `kubectl apply -k k8s/` without Helm."""
    values = str(ROOT / "k8s" / "values.yaml")
    result = helm("template", "clipstream", str(CHART), "--namespace", "clipstream", "-f", values)
    assert result.returncode == 0, result.stderr
    assert (ROOT / "k8s" / "clipstream.yaml").read_text() == result.stdout, "run scripts/render-k8s.sh"


def test_the_curation_rayjob_runs_the_cli_on_the_ray_cluster_and_needs_a_claim() -> None:
    import shlex

    import typer.main

    from services.cli import app

    assert "RayJob" not in {d["kind"] for d in render() if d}
    docs = render("--set", "curation.rayJob.enabled=true", "--set", "curation.rayJob.outputClaim=curation")
    (job,) = [d for d in docs if d and d["kind"] == "RayJob"]
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:4] == ["python", "-m", "services.cli", "curate"] and argv[4].startswith("/output/")
    assert argv[argv.index("--ray-address") + 1] == "auto"
    curate = typer.main.get_command(app).commands["curate"]  # type: ignore[attr-defined]
    options = {opt for param in curate.params for opt in param.opts}
    assert {a for a in argv if a.startswith("--")} <= options  # every flag the job passes is one the CLI takes
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert head["volumes"][0]["persistentVolumeClaim"]["claimName"] == "curation"
    env = {e["name"]: e.get("value") for e in head["containers"][0]["env"]}
    assert env["CLIPSTREAM_HOME"].startswith("/output/")  # checkpoints on the claim: a retried job resumes
    result = helm("template", "cs", str(CHART), *REQUIRED, "--set", "curation.rayJob.enabled=true")
    assert result.returncode != 0 and "curation.rayJob.outputClaim" in result.stderr
