"""`clipstream stack up|down|status`: infrastructure first, then one process per service."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from services.common.webhooks import LOCAL_KEY_FILE
from services.stack.kafka import start_kafka
from services.stack.milvus import start_milvus_lite
from services.stack.process import Proc, StackError, http_ok, wait_until
from services.stack.seaweedfs import start_seaweedfs
from services.stack.settings import StackSettings
from services.stack.triton import start_triton
from services.text import sentences

# service -> (module, health port env var, default port)
SERVICES: dict[str, tuple[str, str, int]] = {
    "decoder": ("services.decoder", "CLIPSTREAM_DECODER_HEALTH_PORT", 9101),
    "embedder": ("services.embedder", "CLIPSTREAM_EMBEDDER_HEALTH_PORT", 9102),
    "indexer": ("services.indexer", "CLIPSTREAM_INDEXER_HEALTH_PORT", 9103),
    "enricher": ("services.enricher", "CLIPSTREAM_ENRICHER_HEALTH_PORT", 9104),
    "duplicates": ("services.duplicates", "CLIPSTREAM_DUPLICATES_HEALTH_PORT", 9107),
    "qc": ("services.qc", "CLIPSTREAM_QC_HEALTH_PORT", 9108),
    "ocr": ("services.ocr", "CLIPSTREAM_OCR_HEALTH_PORT", 9110),
    "webhooks": ("services.webhooks", "CLIPSTREAM_WEBHOOKS_HEALTH_PORT", 9109),
    "search": ("services.search", "CLIPSTREAM_SEARCH_PORT", 8080),
    "gateway": ("services.gateway", "CLIPSTREAM_GATEWAY_PORT", 8090),
    "notifications": ("services.gateway.notifications", "CLIPSTREAM_NOTIFICATIONS_HEALTH_PORT", 9106),
}
INFRA = ("kafka", "milvus", "seaweedfs", "triton")


def ensure_model(settings: StackSettings) -> str:
    """The configured CLIP, or the toy-world CLIP shipped in the package when none is configured."""
    if settings.common.clip_model:
        return settings.common.clip_model
    target = settings.common.default_model_dir
    if not (target / "open_clip_model.safetensors").is_file():
        raise StackError(
            f"the shipped toy-world CLIP is missing from {target}: rebuild it with "
            f"`clipstream model train-toy {target}`, or set CLIPSTREAM_CLIP_MODEL"
        )
    return str(target)


def _env(settings: StackSettings, clip_model: str) -> dict[str, str]:
    env = {
        "CLIPSTREAM_HOME": str(settings.common.home.resolve()),
        "CLIPSTREAM_CLIP_MODEL": clip_model,
        "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")]),
    }
    search_port = int(os.environ.get("CLIPSTREAM_SEARCH_PORT", SERVICES["search"][2]))
    gateway_port = int(os.environ.get("CLIPSTREAM_GATEWAY_PORT", SERVICES["gateway"][2]))
    env["CLIPSTREAM_SEARCH_GATEWAY_URL"] = os.environ.get(
        "CLIPSTREAM_SEARCH_GATEWAY_URL", f"http://{settings.host}:{gateway_port}"
    )
    if "CLIPSTREAM_GATEWAY_CORS_ORIGINS" not in os.environ:  # the local page may upload through the gateway
        env["CLIPSTREAM_GATEWAY_CORS_ORIGINS"] = json.dumps([f"http://{settings.host}:{search_port}"])
    local_keys = json.dumps({settings.common.local_api_key(): "default"})
    if "CLIPSTREAM_WEBHOOKS_SECRET_KEY" not in os.environ:  # made before the gateway and the dispatcher race for it
        settings.common.local_secret(LOCAL_KEY_FILE)
    for service in ("SEARCH", "GATEWAY"):
        if f"CLIPSTREAM_{service}_API_KEYS" not in os.environ:
            env[f"CLIPSTREAM_{service}_API_KEYS"] = local_keys
    if settings.seaweedfs:  # uploads land in the local object store, which the decoder (and search) read back
        found = _object_store_env(settings)
        env.update({k: v for k, v in found.items() if k not in os.environ or k.endswith("_S3_PREFIXES")})
    return env


def _text_encoder_env() -> dict[str, str]:
    """The sentence encoder of on-screen text, exported once (before the OCR stage and search race for it) and
    named to both."""
    folder = Path(os.environ.get("CLIPSTREAM_OCR_ENCODER_DIR") or sentences.default_folder())
    sentences.prepare(folder)
    return {"CLIPSTREAM_OCR_ENCODER_DIR": str(folder), "CLIPSTREAM_SEARCH_TEXT_ENCODER_DIR": str(folder)}


def _object_store_env(settings: StackSettings) -> dict[str, str]:
    """The gateway writes its uploads into the local store, and the media readers may read exactly its
    upload prefix there, with the store's (generated) keys."""
    from services.gateway.settings import GatewaySettings

    gateway = GatewaySettings()
    access, secret = settings.s3_credentials()
    own = f"s3://{gateway.upload_bucket}/{gateway.upload_prefix.strip('/')}/"
    configured = json.loads(os.environ.get("CLIPSTREAM_DECODER_S3_PREFIXES", "[]"))
    env = {"CLIPSTREAM_DECODER_S3_PREFIXES": json.dumps([*configured, own] if own not in configured else configured)}
    for service in ("GATEWAY", "DECODER"):
        env[f"CLIPSTREAM_{service}_S3_ENDPOINT_URL"] = f"http://{settings.host}:{settings.s3_port}"
        env[f"CLIPSTREAM_{service}_S3_ACCESS_KEY"] = access
        env[f"CLIPSTREAM_{service}_S3_SECRET_KEY"] = secret
    return env


def _ready(port: int) -> bool:
    return http_ok(f"http://127.0.0.1:{port}/readyz")


def up(settings: StackSettings, services: bool = True) -> dict[str, int]:
    clip_model = ensure_model(settings)
    procs = [start_kafka(settings)]
    if settings.milvus_lite:
        procs.append(start_milvus_lite(settings))
    if settings.seaweedfs:
        procs.append(start_seaweedfs(settings))
    if settings.triton:
        procs.append(start_triton(settings, clip_model))
    if services:
        env = _env(settings, clip_model)
        env.update(_text_encoder_env())
        started = []
        for name, (module, port_var, default_port) in SERVICES.items():
            proc = Proc(name, settings.run_dir)
            port = int(os.environ.get(port_var, default_port))
            # each service runs under a supervisor that restarts it on exit or failed liveness, as Kubernetes would
            argv = [
                sys.executable,
                "-m",
                "services.stack.supervisor",
                name,
                f"http://127.0.0.1:{port}/healthz",
                str(settings.run_dir),
                "--",
                sys.executable,
                "-m",
                module,
            ]
            if name == "enricher":
                argv += [
                    "worker",
                    "--loglevel",
                    "warn",
                    "--web-host",
                    "127.0.0.1",
                    "--web-bind",
                    "127.0.0.1",
                    "--web-port",
                    str(port),
                ]
            proc.start(argv, env=env, ports=[("127.0.0.1", port)])
            started.append((proc, port))
        for proc, port in started:
            wait_until(lambda port=port: _ready(port), proc, f"{proc.name} readiness on :{port}", 180)  # type: ignore[misc]
        procs.extend(p for p, _ in started)
    return {p.name: p.pid() or 0 for p in procs}


def service_pid(settings: StackSettings, name: str) -> int | None:
    """The PID of the service process itself (its supervisor's child), e.g. to kill it in a chaos test."""
    try:
        pid = int((settings.run_dir / f"{name}.child.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def down(settings: StackSettings) -> list[str]:
    stopped = []
    for name in [*reversed(list(SERVICES)), *reversed(INFRA)]:
        if Proc(name, settings.run_dir).stop():
            stopped.append(name)
    return stopped


def status(settings: StackSettings) -> dict[str, int | None]:
    return {name: Proc(name, settings.run_dir).pid() for name in [*INFRA, *SERVICES]}


def describe(settings: StackSettings) -> str:
    return json.dumps(status(settings), indent=2)


__all__ = ["StackError", "describe", "down", "ensure_model", "status", "up"]
