"""`clipstream doctor`: what is installed, what runs and what is healthy, with the fix for each thing that is not.

A finding is fatal when the main job (`clipstream demo`) cannot work until it is fixed: a program it runs is
missing and nothing would fetch it, or a stack that was started is broken (a process gone, a service not
ready, a port held by a stranger). A stopped stack is not fatal (`stack up` and the demo start it), nor is
a download the first `stack up` makes, nor a tool only the tests use.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from services.stack.kafka import libs_dir
from services.stack.manager import INFRA, SERVICES, ensure_model
from services.stack.process import Proc, StackError, port_open
from services.stack.settings import StackSettings, port_of
from services.stack.triton import triton_dir, triton_ready

Section = Literal["installed", "running", "healthy"]
BOOTSTRAP = "run ./scripts/bootstrap.sh"
TESTS_FIX = "needed only by the tests: run ./scripts/bootstrap.sh tests"
STACK_UP = "run `clipstream stack up` (or `clipstream demo`)"
CHROMIUM = Path("/usr/bin/chromium")  # the path the page tests launch


@dataclass(frozen=True)
class Finding:
    section: Section
    name: str
    ok: bool
    detail: str
    fix: str = ""
    fatal: bool = False  # the main job cannot work until this is fixed
    tests_only: bool = False


def any_fatal(findings: list[Finding]) -> bool:
    return any(f.fatal for f in findings)


def service_port(name: str) -> int:
    """The port a stack service answers `/readyz` on, as `stack up` chose it."""
    _, variable, default = SERVICES[name]
    return int(os.environ.get(variable, default))


def _ports(settings: StackSettings, name: str) -> list[int]:
    """The loopback ports a component listens on, to tell a stopped one from one a stranger replaced."""
    common = settings.common
    if name == "kafka":
        return [port_of(common.kafka_bootstrap), settings.kafka_controller_port]
    if name == "milvus":
        return [urlparse(common.milvus_uri).port or 19530]
    if name == "triton":
        return [port_of(common.triton_http_url), port_of(common.triton_grpc_url)]
    if name == "seaweedfs":
        return [settings.s3_port, settings.seaweedfs_base_port]
    return [service_port(name)]


def _components(settings: StackSettings) -> list[str]:
    skipped = {n for n, on in (("milvus", settings.milvus_lite), ("seaweedfs", settings.seaweedfs)) if not on}
    return [n for n in (*INFRA, *SERVICES) if n not in skipped]


def diagnose(settings: StackSettings, bin_dir: Path | None = None, timeout_s: float = 2.0) -> list[Finding]:
    """Every finding, installed first. `bin_dir` is where the virtualenv's programs are (this interpreter's)."""
    venv = bin_dir or Path(sys.executable).parent
    running = {name: Proc(name, settings.run_dir).pid() for name in _components(settings)}
    return [*installed(settings, venv), *processes(settings, running), *health(settings, running, timeout_s)]


def installed(settings: StackSettings, venv: Path) -> Iterator[Finding]:
    java = shutil.which("java")
    yield Finding("installed", "java", java is not None, java or "not on PATH", "" if java else BOOTSTRAP, not java)
    mvn = shutil.which("mvn")
    jars = libs_dir(settings)
    cached = (jars / ".complete").is_file()
    if mvn:
        yield Finding("installed", "mvn", True, mvn)
    else:
        detail = "not on PATH; not needed while the Kafka jars are cached" if cached else "not on PATH"
        yield Finding("installed", "mvn", cached, detail, "" if cached else BOOTSTRAP, not cached)
    if cached:
        yield Finding("installed", "Kafka jars", True, str(jars))
    elif mvn:
        yield Finding(
            "installed", "Kafka jars", False, f"not cached in {jars}", "the first `clipstream stack up` resolves them"
        )
    else:
        yield Finding(
            "installed", "Kafka jars", False, f"not cached in {jars}, and no mvn to fetch them", BOOTSTRAP, True
        )
    triton = triton_dir(settings)
    if (triton / ".complete").is_file():
        yield Finding("installed", "tritonserver", True, str(triton))
    else:
        yield Finding(
            "installed",
            "tritonserver",
            False,
            f"not unpacked in {triton}: the first `clipstream stack up` downloads the nvidia-pytriton wheel",
            "run `clipstream triton prepare` (or ./scripts/bootstrap.sh)",
        )
    yield _model(settings)
    if settings.milvus_lite:
        yield _program("Milvus Lite", venv / "milvus-lite", BOOTSTRAP, fatal=True)
    if settings.seaweedfs:
        weed = venv / "weed" if (venv / "weed").is_file() else Path(shutil.which("weed") or venv / "weed")
        yield _program("SeaweedFS (weed)", weed, BOOTSTRAP, fatal=True)
    chromium = Path(shutil.which("chromium") or CHROMIUM)
    yield _program("chromium", chromium, TESTS_FIX, fatal=False, tests_only=True)
    for tool in ("helm", "promtool", "jaeger"):
        yield _program(tool, venv / tool, TESTS_FIX, fatal=False, tests_only=True)


def _program(name: str, path: Path, fix: str, fatal: bool, tests_only: bool = False) -> Finding:
    if path.is_file() and os.access(path, os.X_OK):
        return Finding("installed", name, True, str(path), tests_only=tests_only)
    return Finding("installed", name, False, f"{path} missing", fix, fatal, tests_only)


def _model(settings: StackSettings) -> Finding:
    """The CLIP the stack would serve: the shipped toy model unless CLIPSTREAM_CLIP_MODEL names another."""
    try:
        spec = ensure_model(settings)
    except StackError as exc:
        fix = f"`clipstream model train-toy {settings.common.default_model_dir}`, or set CLIPSTREAM_CLIP_MODEL"
        return Finding("installed", "CLIP model", False, exc.detail.split(":", 1)[0], fix, True)
    _, at, pretrained = spec.partition("@")
    path = Path(pretrained if at else spec)
    if at and not (os.sep in pretrained or path.suffix):
        return Finding("installed", "CLIP model", True, f"{spec} (a pretrained tag: fetched by open_clip)")
    if path.exists():
        return Finding("installed", "CLIP model", True, spec)
    fix = "set CLIPSTREAM_CLIP_MODEL to an open_clip or Hugging Face CLIP folder, or unset it for the shipped toy CLIP"
    return Finding("installed", "CLIP model", False, f"CLIPSTREAM_CLIP_MODEL={spec}: {path} does not exist", fix, True)


def processes(settings: StackSettings, running: dict[str, int | None]) -> Iterator[Finding]:
    """One finding per component; a stack that is all stopped is one finding."""
    found: list[Finding] = []
    for name, pid in running.items():
        proc = Proc(name, settings.run_dir)
        if pid is not None:
            found.append(Finding("running", name, True, f"pid {pid}"))
            continue
        taken = [p for p in _ports(settings, name) if port_open(settings.host, p)]
        if taken:
            ports = ", ".join(f"{settings.host}:{p}" for p in taken)
            fix = "stop that process (a leftover of an earlier run?) or give the stack other ports"
            found.append(
                Finding("running", name, False, f"{ports} held by a process this stack did not start", fix, True)
            )
        elif proc.pid_file.is_file():
            fix = f"see {proc.log_file}; `clipstream stack up` starts it again"
            found.append(
                Finding("running", name, False, "exited: its pid file is left, the process is gone", fix, True)
            )
        else:
            found.append(Finding("running", name, False, "stopped", STACK_UP))
    if all(not f.ok and not f.fatal for f in found):
        yield Finding(
            "running", "the stack", False, f"not running (state in {settings.common.home.resolve()})", STACK_UP
        )
        return
    yield from found


def health(settings: StackSettings, running: dict[str, int | None], timeout_s: float) -> Iterator[Finding]:
    """Probes what runs (an external Milvus is probed whatever runs here); a failed probe is fatal."""
    common = settings.common
    if running.get("kafka"):
        yield _probe("kafka", _kafka_problem(common.kafka_bootstrap, timeout_s), settings)
    if running.get("milvus") or not settings.milvus_lite:
        yield _probe("milvus", _milvus_problem(common.milvus_uri, timeout_s), settings)
    if running.get("triton"):
        ready = triton_ready(common.triton_http_url)
        yield _probe("triton", None if ready else f"{common.triton_http_url}/v2/health/ready is not 200", settings)
    if running.get("seaweedfs"):
        up = port_open(settings.host, settings.s3_port)
        yield _probe("seaweedfs", None if up else f"S3 port {settings.s3_port} closed", settings)
    for name in SERVICES:
        if running.get(name):
            yield _probe(name, _readyz_problem(service_port(name), timeout_s), settings)


def _probe(name: str, problem: str | None, settings: StackSettings) -> Finding:
    if problem is None:
        return Finding("healthy", name, True, "ready")
    return Finding("healthy", name, False, problem, f"see {Proc(name, settings.run_dir).log_file}", True)


def _readyz_problem(port: int, timeout_s: float) -> str | None:
    url = f"http://127.0.0.1:{port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return None if resp.status == 200 else f"{url} answered {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}: {exc.read(300).decode(errors='replace').strip()}"
    except OSError as exc:
        return f"{url}: {exc}"


def _kafka_problem(bootstrap: str, timeout_s: float) -> str | None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    quiet = logging.getLogger("clipstream.doctor.kafka")
    quiet.disabled = True  # librdkafka's connection errors would bury the table
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": quiet}
    admin = AdminClient(config)
    try:
        topics = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        return f"{bootstrap}: no metadata within {timeout_s:.0f}s ({exc.args[0]})"
    return None if topics is not None else f"{bootstrap}: no topics"


def _milvus_problem(uri: str, timeout_s: float) -> str | None:
    from pymilvus import MilvusClient

    try:
        client = MilvusClient(uri=uri, timeout=timeout_s)
        try:
            client.list_collections()
        finally:
            client.close()
    except Exception as exc:  # pymilvus raises its own tree and gRPC's: any of them means "not reachable"
        return f"{uri}: {str(exc)[:200]}"
    return None
