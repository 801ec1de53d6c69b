"""Real Apache Kafka brokers (KRaft), one node or a cluster, jars resolved from Maven Central."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from deploy.local.processes import ProcessTable
from disparo.errors import DisparoError

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_FILES = REPO_ROOT / "deploy" / "local" / "kafka"


class ProvisioningError(DisparoError):
    """The broker could not be provisioned or started."""


def provision_jars(cache_dir: Path) -> Path:
    """Resolve the broker's jars with Maven into `cache_dir/libs` once per pom version."""
    cache_dir = cache_dir.resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    pom = KAFKA_FILES / "pom.xml"
    stamp_value = hashlib.sha256(pom.read_bytes()).hexdigest()
    libs = cache_dir / "libs"
    stamp = cache_dir / "libs.stamp"
    if stamp.exists() and stamp.read_text() == stamp_value and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise ProvisioningError("Kafka needs `java` (17+) and `mvn` on PATH; run `make system`")
    print(f"resolving Kafka jars from Maven Central into {libs} ...", file=sys.stderr, flush=True)
    shutil.rmtree(libs, ignore_errors=True)
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={libs}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ProvisioningError(f"mvn failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    stamp.write_text(stamp_value)
    return libs


@dataclass(frozen=True)
class SecureListener:
    """A SASL_SSL (SCRAM-SHA-512) listener: its port, PEM key+chain and SCRAM users."""

    port: int
    keystore_pem: Path  # PKCS#8 private key followed by the certificate chain
    users: tuple[tuple[str, str], ...]  # (name, password)
    # With ACLs on, only these users may do anything not granted (`deploy/kafka_acls.py`);
    # the loopback PLAINTEXT listener (the broker's own, ANONYMOUS) stays a super user.
    super_users: tuple[str, ...] | None = None

    def listener(self) -> str:
        return f"SASL_SSL://127.0.0.1:{self.port}"

    def props(self) -> dict[str, str]:
        scram = "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"
        props = {
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            scram: "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore_pem),
        }
        if self.super_users is not None:
            supers = ";".join(f"User:{u}" for u in ("ANONYMOUS", *self.super_users))
            props["authorizer.class.name"] = (
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
            )
            props["super.users"] = supers
        return props

    def format_args(self) -> list[str]:
        return [
            arg
            for name, password in self.users
            for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")
        ]


@dataclass
class KafkaNode:
    """One broker+controller node: config, storage format, process, readiness."""

    libs: Path
    data_dir: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "768m"
    node_id: int = 1
    voters: str = ""  # controller.quorum.voters of a cluster; empty = this node alone
    replication: int = 1  # of the broker's internal topics (offsets, transactions)
    secure: SecureListener | None = None  # a SASL_SSL listener beside the plaintext one

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    def write_config(self) -> None:
        """Write server.properties for a KRaft broker+controller node on loopback."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        rf, min_isr = str(self.replication), str(max(1, self.replication - 1))
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters
            or f"{self.node_id}@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            "num.partitions": "6",
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": "0",
            # Allows DISPARO_KAFKA_SESSION_TIMEOUT_S down to 1 s (the tests use 4; default 6).
            "group.min.session.timeout.ms": "1000",
            "auto.create.topics.enable": "false",
            # One network and one IO thread per core of a small machine (defaults: 3 and 8).
            "num.network.threads": "2",
            "num.io.threads": "2",
        }
        if self.secure is not None:
            listener = self.secure.listener()
            props["listeners"] += "," + listener
            props["advertised.listeners"] += "," + listener
            props["listener.security.protocol.map"] += ",SASL_SSL:SASL_SSL"
            props.update(self.secure.props())
        self.config_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def java(self, main: str, *args: str) -> list[str]:
        return [
            "java",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            # C1 only: on a small machine C2's compiler threads cost the broker more CPU for
            # minutes than its faster code saves (docs/benchmarks.md, issue 16).
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={KAFKA_FILES / 'log4j2.properties'}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def random_cluster_id(self) -> str:
        return self._run(self.java("kafka.tools.StorageTool", "random-uuid")).split()[-1]

    def format_storage(self, cluster_id: str | None = None) -> None:
        """Format the log dir once; a formatted node keeps its data across restarts."""
        if (self.data_dir / "logs" / "meta.properties").exists():
            return
        self.write_config()
        cluster_id = cluster_id or self.random_cluster_id()
        scram = self.secure.format_args() if self.secure is not None else []
        self._run(
            self.java(
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.config_file),
                *scram,
            )
        )

    def start(
        self, processes: ProcessTable, name: str = "kafka", cluster_id: str | None = None
    ) -> int:
        """Start the broker in the background (formatting first) unless it already runs."""
        running = processes.pid(name)
        if running is not None:
            return running
        self.format_storage(cluster_id)
        self.write_config()
        return processes.start(name, self.java("kafka.Kafka", str(self.config_file)), os.environ)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Block until the broker answers a metadata request, or raise."""
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=[self.bootstrap],
                    request_timeout_ms=3000,
                )
                try:
                    admin.list_topics()
                    return
                finally:
                    admin.close()
            except (KafkaError, OSError) as exc:
                last = exc
                time.sleep(0.3)
        raise ProvisioningError(f"Kafka at {self.bootstrap} not ready after {timeout_s}s: {last}")

    @staticmethod
    def _run(cmd: list[str]) -> str:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ProvisioningError(f"{' '.join(cmd[-4:])} failed: {done.stderr[-2000:]}")
        return done.stdout


_HANDED_OUT: set[int] = set()
_HANDING = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now and that this process has
    not handed out before."""
    # The kernel may give the same port to two binds in a row once the first socket is
    # closed: a broker then got one port for both of its listeners and refused to start.
    with _HANDING:
        while True:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port: int = s.getsockname()[1]
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port


@contextmanager
def temporary_broker(home: Path, heap: str = "512m") -> Iterator[str]:
    """A broker on free ports with its data under `home`; yields its bootstrap address."""
    libs = provision_jars(REPO_ROOT / ".local" / "kafka")
    node = KafkaNode(
        libs=libs, data_dir=home / "kafka", port=free_port(), controller_port=free_port(), heap=heap
    )
    table = ProcessTable(home / "run")
    node.start(table)
    try:
        node.wait_ready(90)
        yield node.bootstrap
    finally:
        table.stop("kafka", grace_s=20)


@dataclass
class KafkaCluster:
    """Several broker+controller nodes forming one KRaft quorum on loopback."""

    nodes: list[KafkaNode]
    processes: ProcessTable

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def name(self, node: KafkaNode) -> str:
        return f"kafka-{node.node_id}"

    def pid(self, node: KafkaNode) -> int | None:
        return self.processes.pid(self.name(node))


@contextmanager
def temporary_cluster(home: Path, size: int = 3, heap: str = "384m") -> Iterator[KafkaCluster]:
    """`size` brokers (each also a controller) with replication `size`, stopped on exit."""
    libs = provision_jars(REPO_ROOT / ".local" / "kafka")
    ports = [(free_port(), free_port()) for _ in range(size)]
    voters = ",".join(f"{n}@127.0.0.1:{c}" for n, (_, c) in enumerate(ports, start=1))
    nodes = [
        KafkaNode(
            libs=libs,
            data_dir=home / f"kafka-{n}",
            port=port,
            controller_port=controller,
            heap=heap,
            node_id=n,
            voters=voters,
            replication=size,
        )
        for n, (port, controller) in enumerate(ports, start=1)
    ]
    cluster = KafkaCluster(nodes, ProcessTable(home / "run"))
    cluster_id = nodes[0].random_cluster_id()
    try:
        for node in nodes:
            node.start(cluster.processes, cluster.name(node), cluster_id)
        for node in nodes:
            node.wait_ready(120)
        yield cluster
    finally:
        # All at once: stopped one by one, the last ones wait out the grace period for a
        # controller quorum that left with the others. The data is thrown away anyway.
        cluster.processes.stop_all([cluster.name(node) for node in nodes], grace_s=10)
