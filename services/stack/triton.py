"""Triton from the `nvidia-pytriton` wheel's bundled tritonserver, run directly on `triton_models/`.

The wheel is unpacked into a cache instead of installed: it pins NumPy and tritonclient versions that
the project should not inherit. Only the Python backend ships in it, so models run torch in-process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

from services.stack.process import Proc, StackError, http_ok, wait_until
from services.stack.settings import StackSettings, port_of

_PY = f"{sys.version_info.major}.{sys.version_info.minor}"


def triton_dir(settings: StackSettings) -> Path:
    """Where the server taken out of the pinned wheel is cached (`.complete` in it once unpacked)."""
    return settings.cache_dir / f"tritonserver-{settings.pytriton_version}"


def triton_home(settings: StackSettings) -> Path:
    home = triton_dir(settings)
    if (home / ".complete").is_file():
        return home
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
                tmp,
                f"nvidia-pytriton=={settings.pytriton_version}",
            ],
            capture_output=True,
            text=True,
        )
        wheels = list(Path(tmp).glob("nvidia_pytriton-*.whl"))
        if result.returncode != 0 or not wheels:
            raise StackError(f"could not download nvidia-pytriton:\n{result.stderr[-3000:]}")
        shutil.rmtree(home, ignore_errors=True)
        with zipfile.ZipFile(wheels[0]) as wheel:
            for member in wheel.namelist():
                if member.startswith(("pytriton/tritonserver/", "nvidia_pytriton.libs/")):
                    wheel.extract(member, home)
    server = home / "pytriton" / "tritonserver"
    backend = home / "backends" / "python"
    backend.mkdir(parents=True, exist_ok=True)
    shutil.copy2(server / "backends" / "python" / "libtriton_python.so", backend)
    shutil.copy2(server / "backends" / "python" / "triton_python_backend_utils.py", backend)
    shutil.copy2(server / "python_backend_stubs" / _PY / "triton_python_backend_stub", backend)
    for exe in (server / "bin" / "tritonserver", backend / "triton_python_backend_stub"):
        exe.chmod(0o755)
    (home / ".complete").touch()
    return home


def triton_ready(url: str) -> bool:
    return http_ok(f"http://{url}/v2/health/ready")


def triton_command(settings: StackSettings, clip_model: str) -> tuple[list[str], dict[str, str]]:
    """The tritonserver command line and environment: one definition for the local stack and containers."""
    home = triton_home(settings)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env = {
        "LD_LIBRARY_PATH": os.pathsep.join(
            p for p in (str(home / "nvidia_pytriton.libs"), libdir, os.environ.get("LD_LIBRARY_PATH", "")) if p
        ),
        # the stub embeds the interpreter found first on PATH: it must be ours, with torch and services
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")]),
        "CLIPSTREAM_CLIP_MODEL": clip_model,
    }
    host = settings.host
    argv = [
        str(home / "pytriton" / "tritonserver" / "bin" / "tritonserver"),
        f"--model-repository={settings.model_repository.resolve()}",
        f"--backend-directory={home / 'backends'}",
        f"--http-address={host}",
        f"--http-port={port_of(settings.common.triton_http_url)}",
        f"--grpc-address={host}",
        f"--grpc-port={port_of(settings.common.triton_grpc_url)}",
        f"--metrics-address={host}",
        f"--metrics-port={settings.triton_metrics_port}",
        "--allow-gpu-metrics=false",
        "--exit-on-error=true",
        # our configs are complete: auto-completion would start one more stub per model (each importing torch)
        "--disable-auto-complete-config",
        "--log-verbose=0",
    ]
    return argv, env


def start_triton(settings: StackSettings, clip_model: str) -> Proc:
    proc = Proc("triton", settings.run_dir)
    http = settings.common.triton_http_url
    if not proc.running():
        argv, env = triton_command(settings, clip_model)
        ports = [(settings.host, port_of(u)) for u in (http, settings.common.triton_grpc_url)]
        proc.start(argv, env=env, ports=[*ports, (settings.host, settings.triton_metrics_port)])
    wait_until(lambda: triton_ready(http), proc, f"Triton at {http}", 180)
    return proc


def exec_triton(settings: StackSettings, clip_model: str) -> None:
    """Replace this process with tritonserver (a container's main process)."""
    argv, env = triton_command(settings, clip_model)
    os.execve(argv[0], argv, {**os.environ, **env})
