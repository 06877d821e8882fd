"""Apache Kafka in KRaft mode, one node on loopback, from the official jars on Maven Central."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import uuid
from importlib import resources
from pathlib import Path

from services.common.kafka.admin import ensure_topics
from services.stack.process import Proc, StackError, port_open, wait_until
from services.stack.settings import StackSettings, port_of

_LOG4J = """\
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
"""


def libs_dir(settings: StackSettings) -> Path:
    """The cache folder of the jars the committed pom resolves to (a new pom, a new folder)."""
    pom = resources.files("services.stack") / "pom.xml"
    return settings.cache_dir / f"kafka-libs-{hashlib.sha256(pom.read_bytes()).hexdigest()[:10]}"


def kafka_libs(settings: StackSettings) -> Path:
    """Resolve the broker jars with Maven once; later calls reuse the cached folder."""
    pom = resources.files("services.stack") / "pom.xml"
    libs = libs_dir(settings)
    if (libs / ".complete").is_file():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is needed to fetch the Kafka jars: apt-get install maven")
    libs.mkdir(parents=True, exist_ok=True)
    with resources.as_file(pom) as pom_path:
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom_path),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={libs}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
        )
    if result.returncode != 0:
        raise StackError(f"mvn failed to resolve the Kafka jars:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    (libs / ".complete").touch()
    return libs


def start_kafka(settings: StackSettings) -> Proc:
    proc = Proc("kafka", settings.run_dir)
    host, port = settings.host, port_of(settings.common.kafka_bootstrap)
    if not proc.running():
        java = shutil.which("java")
        if java is None:
            raise StackError("Java 17+ is needed to run Kafka: apt-get install openjdk-17-jre-headless")
        libs = kafka_libs(settings)
        data = settings.data_dir / "kafka"
        conf_dir = settings.run_dir / "kafka-conf"
        conf_dir.mkdir(parents=True, exist_ok=True)
        props = conf_dir / "server.properties"
        ctrl = settings.kafka_controller_port
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{host}:{ctrl}",
                    f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{ctrl}",
                    f"advertised.listeners=PLAINTEXT://{host}:{port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={data}",
                    "num.partitions=6",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=6",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=6",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "message.max.bytes=8388608",
                    "log.retention.hours=168",
                    "",
                ]
            )
        )
        log4j = conf_dir / "log4j2.properties"
        log4j.write_text(_LOG4J)
        classpath = f"{libs}/*"
        # a one-broker dev stack: the quick JIT tier and the serial collector start it in about a third less CPU on
        # 2 cores (restarts too); a production broker is tuned by its own platform, not by this
        jvm = [
            java,
            f"-Xmx{settings.kafka_heap}",
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            classpath,
        ]
        if not (data / "meta.properties").is_file():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = subprocess.run(
                # `=`: a base64url id may start with "-", which argparse would read as an option (1 start in 64)
                [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(props)],
                capture_output=True,
                text=True,
            )
            if fmt.returncode != 0:
                raise StackError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")
        proc.start([*jvm, "kafka.Kafka", str(props)], ports=[(host, port), (host, ctrl)])
    wait_until(lambda: port_open(host, port), proc, f"Kafka on {host}:{port}", 90)
    ensure_topics(settings.common, extra=(settings.seaweedfs_notify_topic,) if settings.seaweedfs_notify_topic else ())
    return proc
