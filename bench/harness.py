"""Pieces the benchmarks share: nginx as the receiver, a broker, disparo's processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from analytics.control.keys import publish_key
from deploy.local.broker import free_port, temporary_broker
from deploy.local.processes import ProcessTable
from disparo.access import new_key
from disparo.kafka import ensure_topics, make_producer
from disparo.secret_box import new_key_text
from disparo.settings import KernelSettings
from disparo.topics import Topics

DISPARO = str(Path(sys.executable).with_name("disparo"))
NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format hook '$msec $http_webhook_id $uri';
    access_log {dir}/access.log hook buffer=256k flush=1s;
    client_body_buffer_size 64k;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 '{{"ok":true}}'; }}
    }}
}}
"""


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


@dataclass
class Nginx:
    url: str
    access_log: Path

    def cpu(self) -> float:
        """CPU seconds of the nginx master and its workers so far."""
        try:
            master = int((self.access_log.parent / "nginx.pid").read_text())
        except (OSError, ValueError):
            return 0.0
        return cpu_seconds(master) + sum(cpu_seconds(pid) for pid in _children(master))


def _children(parent: int) -> list[int]:
    """Pids whose parent is `parent` (nginx workers), from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


@contextmanager
def nginx() -> Iterator[Nginx]:
    """nginx on a free loopback port answering 200 to everything, logging webhook ids."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        raise SystemExit("nginx not found: run `make bench` (it installs nginx-light)")
    with tempfile.TemporaryDirectory(prefix="disparo-nginx-") as tmp:
        port = free_port()
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=tmp, port=port))
        subprocess.run([binary, "-c", str(conf), "-p", tmp], check=True)
        try:
            yield Nginx(f"http://127.0.0.1:{port}", Path(tmp) / "access.log")
        finally:
            subprocess.run([binary, "-c", str(conf), "-p", tmp, "-s", "stop"], check=False)
            time.sleep(0.3)


def cpu_seconds(pid: int | None) -> float:
    """User+system CPU seconds a live process has used so far (0 when gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Services:
    api: str
    dispatcher: str
    table: ProcessTable
    env: dict[str, str]
    key: str  # an admin API key

    def client(self, timeout_s: float = 30) -> httpx.Client:
        """An HTTP client signed in with the admin key."""
        return httpx.Client(headers={"Authorization": f"Bearer {self.key}"}, timeout=timeout_s)

    def active_rule(self, **fields: Any) -> dict[str, Any]:
        """Create a rule and wait until the dispatcher applies it; the rule as created."""
        answer = self.client().post(f"{self.api}/api/v1/rules", json=fields)
        created: dict[str, Any] = answer.json()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rules = httpx.get(f"{self.dispatcher}/rules", timeout=5).json()["rules"]
            if {"id": created["id"], "active": True} in rules:
                return created
            time.sleep(0.2)  # polling the dispatcher's own answer, not a guess at its delay
        raise SystemExit(f"the dispatcher never applied rule {created['id']}")

    def cpu(self) -> dict[str, float]:
        """CPU seconds per running process of the stack (Kafka included when in the table)."""
        return {name: cpu_seconds(self.table.pid(name)) for name in self.table.names()}


broker = temporary_broker


@contextmanager
def services(
    bootstrap: str,
    home: Path,
    workers: int = 1,
    table: ProcessTable | None = None,
    **extra_env: str,
) -> Iterator[Services]:
    """The dispatcher, `workers` delivery workers and analytics as background processes."""
    prefix = "bench."
    ports = {"api": free_port(), "dispatcher": free_port()}
    env = dict(os.environ)
    env.update(
        {
            "DISPARO_KAFKA_BOOTSTRAP": bootstrap,
            "DISPARO_TOPIC_PREFIX": prefix,
            "DISPARO_HOME": str(home),
            "DISPARO_API_PORT": str(ports["api"]),
            "DISPARO_DISPATCHER_PORT": str(ports["dispatcher"]),
            "DISPARO_WORKER_PORT": "0",
            "DISPARO_TARGET_ALLOWLIST": "127.0.0.0/8:*",
            "DISPARO_LOG_LEVEL": "WARNING",
            "DISPARO_SECRET_KEY": new_key_text(),
            **extra_env,
        }
    )
    settings = KernelSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix, home=home)
    ensure_topics(settings)
    key, record = new_key("bench-admin", "admin")
    producer = make_producer(settings, client_id="bench-keys")
    publish_key(producer, Topics(prefix).api_keys, record)
    producer.close(10)
    table = table or ProcessTable(home / "run")
    names = ["analytics", "dispatcher"] + [f"worker-{i}" for i in range(workers)]
    try:
        for name in names:
            table.start(name, [DISPARO, name.split("-")[0]], env)
        svc = Services(
            f"http://127.0.0.1:{ports['api']}",
            f"http://127.0.0.1:{ports['dispatcher']}",
            table,
            env,
            key,
        )
        table.wait_http("analytics", f"{svc.api}/readyz", 90)
        table.wait_http("dispatcher", f"{svc.dispatcher}/healthz", 90)
        yield svc
    finally:
        for name in reversed(names):
            table.stop(name, grace_s=20)
