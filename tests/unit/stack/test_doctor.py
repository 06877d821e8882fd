"""`clipstream doctor`'s decisions, on machines made for each test: an empty PATH and virtualenv folder, an empty
state folder and cache, and loopback ports nothing listens on, then what a test adds (programs, caches, pid files,
a listener). Nothing of ours is replaced: the real checks look at real files, processes and sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from services.common.settings import CommonSettings
from services.stack.doctor import BOOTSTRAP, STACK_UP, TESTS_FIX, Finding, any_fatal, diagnose
from services.stack.kafka import libs_dir
from services.stack.manager import SERVICES
from services.stack.settings import StackSettings
from services.stack.triton import triton_dir

MAIN_PROGRAMS = ("Milvus Lite", "SeaweedFS (weed)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Machine:
    settings: StackSettings
    path: Path  # what PATH holds
    venv: Path  # the virtualenv's bin folder

    def program(self, folder: Path, name: str) -> None:
        exe = folder / name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)

    def install_everything(self) -> None:
        for name in ("java", "mvn"):
            self.program(self.path, name)
        for name in ("milvus-lite", "weed", "helm", "promtool", "jaeger"):
            self.program(self.venv, name)
        for cache in (libs_dir(self.settings), triton_dir(self.settings)):
            cache.mkdir(parents=True)
            (cache / ".complete").touch()

    def findings(self) -> dict[str, Finding]:
        found = diagnose(self.settings, bin_dir=self.venv, timeout_s=1.0)
        return {f"{f.section}:{f.name}": f for f in found}


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Machine:
    path, venv, model = tmp_path / "path", tmp_path / "venv-bin", tmp_path / "model"
    for folder in (path, venv, model):
        folder.mkdir()
    monkeypatch.setenv("PATH", str(path))
    for _, variable, _ in SERVICES.values():
        monkeypatch.setenv(variable, str(_free_port()))
    common = CommonSettings(
        home=tmp_path / "home",
        kafka_bootstrap=f"127.0.0.1:{_free_port()}",
        milvus_uri=f"http://127.0.0.1:{_free_port()}",
        triton_http_url=f"127.0.0.1:{_free_port()}",
        triton_grpc_url=f"127.0.0.1:{_free_port()}",
        clip_model=str(model),
    )
    settings = StackSettings(
        common=common,
        cache_dir=tmp_path / "cache",
        kafka_controller_port=_free_port(),
        s3_port=_free_port(),
        seaweedfs_base_port=_free_port(),
    )
    return Machine(settings, path, venv)


def test_a_bare_machine_is_told_to_bootstrap(machine: Machine) -> None:
    machine.settings.common.clip_model = str(machine.path.parent / "no-such-model")
    found = machine.findings()
    fatal = {key for key, f in found.items() if f.fatal}
    assert fatal == {
        "installed:java",
        "installed:mvn",
        "installed:Kafka jars",
        "installed:CLIP model",
        *(f"installed:{name}" for name in MAIN_PROGRAMS),
    }
    for key in fatal - {"installed:CLIP model"}:
        assert found[key].fix == BOOTSTRAP, key
    assert "CLIPSTREAM_CLIP_MODEL" in found["installed:CLIP model"].fix
    triton = found["installed:tritonserver"]  # the first `stack up` downloads it: not fatal, but said
    assert not triton.ok and not triton.fatal and "clipstream triton prepare" in triton.fix
    for tool in ("helm", "promtool", "jaeger"):
        assert found[f"installed:{tool}"].tests_only and found[f"installed:{tool}"].fix == TESTS_FIX
    # nothing runs and nothing was started: one line, not a failure, and nothing to probe
    assert [k for k in found if not k.startswith("installed:")] == ["running:the stack"]
    assert found["running:the stack"].fix == STACK_UP and not found["running:the stack"].fatal
    assert any_fatal(list(found.values()))


def test_an_installed_machine_with_the_stack_down_passes(machine: Machine) -> None:
    machine.install_everything()
    found = machine.findings()
    assert not any_fatal(list(found.values())), [f for f in found.values() if f.fatal]
    assert all(f.ok for k, f in found.items() if k.startswith("installed:") and k != "installed:chromium")


def test_maven_is_needed_only_while_the_kafka_jars_are_not_cached(machine: Machine) -> None:
    machine.install_everything()
    (machine.path / "mvn").unlink()
    found = machine.findings()
    assert found["installed:mvn"].ok and not found["installed:mvn"].fatal  # the jars are cached
    (libs_dir(machine.settings) / ".complete").unlink()
    found = machine.findings()
    assert found["installed:mvn"].fatal and found["installed:Kafka jars"].fatal
    machine.program(machine.path, "mvn")
    found = machine.findings()
    jars = found["installed:Kafka jars"]  # Maven fetches them on the first `stack up`
    assert not jars.ok and not jars.fatal and "stack up" in jars.fix


def test_tools_only_the_tests_use_are_never_fatal(machine: Machine) -> None:
    machine.install_everything()
    for tool in ("helm", "promtool", "jaeger"):
        (machine.venv / tool).unlink()
    found = machine.findings()
    assert not any_fatal(list(found.values()))
    assert all(not found[f"installed:{t}"].ok and found[f"installed:{t}"].fix == TESTS_FIX for t in ("helm", "jaeger"))


def test_a_started_component_that_died_is_fatal_and_points_at_its_log(machine: Machine) -> None:
    machine.install_everything()
    run = machine.settings.run_dir
    run.mkdir(parents=True)
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    (run / "indexer.pid").write_text(str(gone.pid))
    found = machine.findings()
    indexer = found["running:indexer"]
    assert indexer.fatal and str(run / "indexer.log") in indexer.fix
    assert not found["running:kafka"].fatal and found["running:kafka"].fix == STACK_UP  # merely stopped


def test_a_port_held_by_a_stranger_is_fatal(machine: Machine) -> None:
    machine.install_everything()
    port = int(machine.settings.common.kafka_bootstrap.rsplit(":", 1)[1])
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", port))
        stranger.listen()
        found = machine.findings()
    kafka = found["running:kafka"]
    assert kafka.fatal and f"127.0.0.1:{port}" in kafka.detail and "stop that process" in kafka.fix
    assert any_fatal(list(found.values()))


class _Readyz(BaseHTTPRequestHandler):
    status = 503

    def do_GET(self) -> None:
        body = b"not ready: milvus" if self.status != 200 else b"ok"
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def search_service(machine: Machine, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Readyz]]:
    """A process of the stack's (this one, by its pid file) whose `/readyz` answers what the test sets."""
    handler = type("Handler", (_Readyz,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    monkeypatch.setenv("CLIPSTREAM_SEARCH_PORT", str(server.server_address[1]))
    machine.settings.run_dir.mkdir(parents=True)
    (machine.settings.run_dir / "search.pid").write_text(str(os.getpid()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler
    server.shutdown()
    thread.join(5)


def test_a_running_service_that_is_not_ready_is_fatal(machine: Machine, search_service: type[_Readyz]) -> None:
    machine.install_everything()
    found = machine.findings()
    assert found["running:search"].ok
    search = found["healthy:search"]
    assert search.fatal and "503" in search.detail and "milvus" in search.detail
    assert search.fix == f"see {machine.settings.run_dir / 'search.log'}"
    search_service.status = 200
    found = machine.findings()
    assert found["healthy:search"].ok and not any_fatal(list(found.values()))
