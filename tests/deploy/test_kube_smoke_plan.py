"""How the Kubernetes smoke test (tests/kube_smoke.py) reads the chart for podman: what it plays, translates and
skips, checked on the chart rendered as the smoke test renders it."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.test_helm_chart import by_kind, render
from tests.kube_smoke import NOT_HONOURED, ROOT, for_podman


def _podman_render() -> list[dict]:
    return render("-f", str(ROOT / "k8s" / "values.yaml"), "-f", str(ROOT / "k8s" / "podman-values.yaml"))


def test_every_deployment_is_played_with_its_readiness_probe_made_by_the_runner(tmp_path: Path) -> None:
    docs = _podman_render()
    plan = for_podman(docs, tmp_path)
    deployments = by_kind(docs, "Deployment")
    assert {d["metadata"]["name"] for d in plan.documents if d["kind"] == "Deployment"} == set(deployments)
    assert {p.deployment for p in plan.probes} == set(deployments)
    for probe in plan.probes:
        (container,) = deployments[probe.deployment]["spec"]["template"]["spec"]["containers"]
        ready = container["readinessProbe"]["httpGet"]
        ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
        assert probe.port == (ports[ready["port"]] if isinstance(ready["port"], str) else ready["port"])
        assert probe.path == ready["path"]
    played = [
        c for d in plan.documents if d["kind"] == "Deployment" for c in d["spec"]["template"]["spec"]["containers"]
    ]
    assert not any({"ports", "readinessProbe", "livenessProbe", "startupProbe"} & set(c) for c in played)
    assert all(d["spec"]["replicas"] == 1 for d in deployments.values()), "one pod each: they share one loopback"


def test_memory_volumes_live_on_tmpfs_jobs_run_as_pods_and_the_rest_is_listed(tmp_path: Path) -> None:
    docs = _podman_render()
    plan = for_podman(docs, tmp_path)
    triton = next(d for d in plan.documents if d["metadata"]["name"].endswith("-triton") and d["kind"] == "Deployment")
    (shm,) = [v for v in triton["spec"]["template"]["spec"]["volumes"] if v["name"] == "dshm"]
    assert "emptyDir" not in shm and Path(shm["hostPath"]["path"]).parent == tmp_path
    assert (Path(shm["hostPath"]["path"]).stat().st_mode & 0o1777) == 0o1777
    (job,) = plan.jobs
    assert job["kind"] == "Pod" and job["spec"]["restartPolicy"] == "Never"
    assert (
        job["spec"]["containers"]
        == by_kind(docs, "Job")[job["metadata"]["name"]]["spec"]["template"]["spec"]["containers"]
    )
    assert set(plan.skipped) <= set(NOT_HONOURED) and plan.skipped["Service"] == len(plan.services) > 0
    assert sum(plan.skipped.values()) + len(plan.documents) + len(plan.jobs) == len(docs)
