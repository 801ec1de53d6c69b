"""`disparo up` / `down` / `status`: the whole system on one machine, in the background."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from analytics.control.keys import KeyBook
from deploy.local import demo
from deploy.local.broker import KafkaNode, provision_jars
from deploy.local.processes import ProcessTable
from disparo.errors import DisparoError
from disparo.kafka import ensure_topics
from disparo.secret_box import new_key_text
from disparo.settings import KernelSettings

SERVICES = ("analytics", "dispatcher", "worker")
DEMO_RECEIVER_PORT = 8090
ADMIN_KEY_FILE = "admin.key"
SECRET_KEY_FILE = "secret.key"


def say(text: str) -> None:
    print(f"disparo: {text}", file=sys.stderr, flush=True)


def _table(home: Path) -> ProcessTable:
    return ProcessTable(home / "run")


def _node(settings: KernelSettings) -> KafkaNode:
    host, _, port = settings.bootstrap_servers[0].rpartition(":")
    if host not in {"127.0.0.1", "localhost"}:
        raise DisparoError(f"`disparo up` runs its own broker on loopback, not {host}")
    libs = provision_jars(settings.home / "kafka")
    return KafkaNode(
        libs=libs,
        data_dir=settings.home / "kafka" / "data",
        port=int(port),
        controller_port=int(port) + 1,
    )


def service_env(settings: KernelSettings) -> dict[str, str]:
    """The environment every service of the local stack gets."""
    env = dict(os.environ)
    env.update(
        DISPARO_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        DISPARO_TOPIC_PREFIX=settings.topic_prefix,
        DISPARO_HOME=str(settings.home.resolve()),
    )
    if not env.get("DISPARO_SECRET_KEY"):
        env["DISPARO_SECRET_KEY"] = _secret_key(settings.home)
    # The demo receiver is on loopback: allowed on top of whatever the operator listed.
    listed = env.get("DISPARO_TARGET_ALLOWLIST", "").strip(" ,")
    demo = f"127.0.0.1:{DEMO_RECEIVER_PORT}"
    env["DISPARO_TARGET_ALLOWLIST"] = f"{listed},{demo}" if listed else demo
    return env


def up(settings: KernelSettings, api_port: int, demo_data: bool = True) -> None:
    """Provision and start Kafka, the services and the demo; return with them running."""
    table = _table(settings.home)
    say(f"provisioning Kafka (jars from Maven Central, cached under {settings.home / 'kafka'}) ...")
    node = _node(settings)
    node.start(table)
    say(f"waiting for Kafka at {node.bootstrap} ...")
    node.wait_ready(90)
    created = ensure_topics(settings)
    say(f"topics ready ({len(created)} created)")
    admin_key = _admin_key(settings)
    env = service_env(settings)
    exe = str(Path(sys.executable).with_name("disparo"))
    for name in SERVICES:
        if table.pid(name) is None:
            table.start(name, [exe, name], env)
            say(f"started {name} (log: {table.log_file(name)})")
    table.wait_http("analytics", f"http://127.0.0.1:{api_port}/readyz", 60)
    worker_port = os.environ.get("DISPARO_WORKER_PORT", "8082")
    table.wait_http("worker", f"http://127.0.0.1:{worker_port}/readyz", 60)
    dispatcher_port = os.environ.get("DISPARO_DISPATCHER_PORT", "8081")
    table.wait_http("dispatcher", f"http://127.0.0.1:{dispatcher_port}/healthz", 90)
    if demo_data:
        _demo(table, env, exe, api_port, admin_key)
    say(f"up. Management page: http://127.0.0.1:{api_port}/  API: http://127.0.0.1:{api_port}/docs")
    key_file = settings.home / ADMIN_KEY_FILE
    say(f"sign in with the admin key in {key_file}; with curl:")
    say(
        f'  curl -H "Authorization: Bearer $(cat {key_file})" '
        f"http://127.0.0.1:{api_port}/api/v1/rules"
    )
    say(f"logs and pids under {table.run_dir}; stop everything with `make down`")


def _write_private(path: Path, text: str) -> None:
    """Create `path` readable by its owner only (never over an existing file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")


def _secret_key(home: Path) -> str:
    """The master key sealing rule secrets: made on the first run, kept in $DISPARO_HOME."""
    path = home / SECRET_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    key = new_key_text()
    _write_private(path, key)
    say(f"created the key that seals rule secrets: {path} (back it up; readable by you only)")
    return key


def _admin_key(settings: KernelSettings) -> str:
    """The local stack's admin key: made on the first run, kept in $DISPARO_HOME (0600)."""
    path = settings.home / ADMIN_KEY_FILE
    book = KeyBook(settings)
    try:
        revoked = False
        if path.exists():
            secret = path.read_text().strip()
            if book.ensure(secret, "admin", "admin") is not None:  # Kafka's data may be new
                return secret
            revoked = True
        secret, key = book.create("admin", "admin")
        if revoked:
            path.replace(path.with_name(ADMIN_KEY_FILE + ".revoked"))
            say(f"the admin key in {path} was revoked; it stays revoked: made a new one")
    finally:
        book.close()
    _write_private(path, secret)
    say(f"created admin key {key.id}, written to {path} (readable by you only)")
    return secret


def _demo(
    table: ProcessTable, env: dict[str, str], exe: str, api_port: int, admin_key: str
) -> None:
    if table.pid("demo-receiver") is None:
        table.start("demo-receiver", [exe, "demo-receiver", "--port", str(DEMO_RECEIVER_PORT)], env)
    receiver = f"http://127.0.0.1:{DEMO_RECEIVER_PORT}"
    table.wait_http("demo-receiver", f"{receiver}/healthz", 30)
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{api_port}/api/v1",
        headers={"Authorization": f"Bearer {admin_key}"},
        timeout=30,
    )
    existing = {r["name"] for r in api.get("/rules").raise_for_status().json()["items"]}
    for rule in demo.demo_rules(receiver):
        if rule["name"] not in existing:
            created = api.post("/rules", json=rule).raise_for_status()
            say(f"demo rule {created.json()['id']}: {rule['name']}")
    sent = api.post("/events", json=demo.demo_events())
    sent.raise_for_status()
    say(f"published {sent.json()['accepted']} demo events (half go to a failing endpoint)")


def down(settings: KernelSettings) -> None:
    """Stop everything `up` started, services first and Kafka last."""
    table = _table(settings.home)
    order = ["demo-receiver", *reversed(SERVICES), "kafka"]
    others = [n for n in table.names() if n not in order]
    for name in others + order:
        if table.stop(name, grace_s=30):
            say(f"stopped {name}")
    say("down")


def status(
    settings: KernelSettings, api_port: int, groups: dict[str, list[str]], duties: str
) -> int:
    """Print processes, who owns the analytics duties, consumer lag and the last minute's
    deliveries; 0 when all run."""
    table = _table(settings.home)
    names = ["kafka", *SERVICES, "demo-receiver"]
    running = 0
    print("processes")
    for name in names:
        pid = table.pid(name)
        running += pid is not None
        print(f"  {name:14} {'running, pid ' + str(pid) if pid else 'stopped'}")
    print(f"analytics duties\n  {duties}")
    print("consumer lag (records behind)")
    for group, lag in group_lags(settings, groups).items():
        print(f"  {group:30} {lag if lag is not None else 'unknown (Kafka not reachable)'}")
    print("last minute")
    print(f"  {_last_minute(api_port, _known_key(settings))}")
    return 0 if running == len(names) else 1


def group_lags(settings: KernelSettings, groups: dict[str, list[str]]) -> dict[str, int | None]:
    """Total lag of each consumer group over its topics (log ends minus committed offsets,
    from the first offset where it never committed), None if unknown."""
    from kafka.errors import KafkaError

    from disparo.lag import group_backlog, lag_clients

    try:
        admin, probe = lag_clients(settings, "disparo-status")
    except KafkaError:
        return dict.fromkeys(groups)
    try:
        out: dict[str, int | None] = {}
        for group, topics in groups.items():
            out[group] = sum(group_backlog(admin, probe, group, topics).values())
        return out
    except KafkaError:
        return dict.fromkeys(groups)
    finally:
        probe.close()
        admin.close()


def _known_key(settings: KernelSettings) -> str | None:
    """A key to read the API with: `DISPARO_API_KEY`, else the local stack's admin key."""
    path = settings.home / ADMIN_KEY_FILE
    return os.environ.get("DISPARO_API_KEY") or (
        path.read_text().strip() if path.exists() else None
    )


def _last_minute(api_port: int, key: str | None) -> str:
    if key is None:
        return f"unknown (no API key: set DISPARO_API_KEY or run `make up` for {ADMIN_KEY_FILE})"
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    try:
        answer = httpx.get(
            f"http://127.0.0.1:{api_port}/api/v1/dispatches/summary",
            params={"from": since},
            headers={"Authorization": f"Bearer {key}"},
            timeout=5,
        )
        if answer.status_code != 200:
            return f"unknown (the API answered {answer.status_code}: {answer.text[:200]})"
        summary = answer.json()
    except (httpx.HTTPError, ValueError):
        return "unknown (the management API does not answer)"
    return (
        f"{summary['total']} attempts, {summary['failed']} failed ({summary['failure_rate']:.1%})"
    )
