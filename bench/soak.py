"""Soak: the local stack under steady load through broker restarts and killed services.

Publishes `--rate` events/s (default 300) for `--minutes` (default 20) to one rule whose
endpoint is nginx; restarts the broker every quarter of the run (every 5 minutes of 20) and
SIGKILLs the analytics service (the sink) once and the worker once. One event a second is a
probe whose row is looked up by order number until it appears: its publish-to-row delay,
outside the outage windows, is the staleness. At the end every row is read back.
Last line: `soak: events=N rows=N lost=N duplicates=N max_staleness_s=S`.
Usage: python -m bench.soak [--minutes 20] [--rate 300]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.harness import DISPARO, Services, nginx, say, services
from deploy.local.broker import REPO_ROOT, KafkaNode, free_port, provision_jars
from deploy.local.processes import ProcessTable
from disparo.lag import group_backlog, lag_clients
from disparo.schemas import dispatch_id_for, now_utc
from disparo.settings import KernelSettings
from producers.publish import Publisher

PREFIX = "bench."


@dataclass
class Timeline:
    """Outage windows (start, end) and probe publish/seen times, shared between threads."""

    outages: list[tuple[float, float]] = field(default_factory=list)
    probes: dict[str, float] = field(default_factory=dict)  # order id -> publish time
    seen: dict[str, float] = field(default_factory=dict)  # order id -> first time it had a row
    acked: dict[str, float] = field(default_factory=dict)  # order id -> broker ack time
    delivered: dict[str, float] = field(default_factory=dict)  # order id -> its POST's time
    backlogs: list[tuple[float, dict[str, int]]] = field(default_factory=list)  # per stage
    posts: dict[int, int] = field(default_factory=dict)  # second -> webhooks nginx received
    lock: threading.Lock = field(default_factory=threading.Lock)

    def outage(self, start: float) -> None:
        with self.lock:
            self.outages.append((start, time.time()))

    def delays(self) -> list[tuple[float, float]]:
        """(delay, publish time) of every seen probe whose wait overlaps no outage window."""
        out = []
        for order, published in self.probes.items():
            seen = self.seen.get(order)
            if seen is None or any(a <= seen and published <= b for a, b in self.outages):
                continue
            out.append((seen - published, published))
        return sorted(out, reverse=True)

    def staleness(self) -> float:
        """The worst probe delay outside the outage windows."""
        delays = self.delays()
        return delays[0][0] if delays else 0.0


def event(order_id: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "order.dispatched",
        "order_id": order_id,
        "order_status": "dispatched",
        "occurred_at": now_utc().isoformat(),
        "payload": {"carrier": "acme-logistics", "items": [{"sku": "SKU-1", "qty": 2}]},
    }


def publish_load(
    publisher: Publisher, rate: int, seconds: float, timeline: Timeline
) -> list[dict[str, Any]]:
    """Publish at `rate` events/s in 100 ms slices; one event a second is a probe."""
    sent: list[dict[str, Any]] = []
    futures: list[tuple[dict[str, Any], Any]] = []
    per_slice = max(1, rate // 10)
    start = time.monotonic()
    slice_no = 0
    while time.monotonic() - start < seconds:
        batch = [event(f"SOAK-{slice_no}-{i}") for i in range(per_slice)]
        if slice_no % 10 == 0:
            batch[0]["order_id"] = f"PROBE-{slice_no // 10}"
            timeline.probes[batch[0]["order_id"]] = time.time()
        futures.extend((e, publisher.send(e)) for e in batch)
        if slice_no % 10 == 0:
            probe = batch[0]["order_id"]
            futures[-per_slice][1].add_callback(
                lambda _, o=probe: timeline.acked.setdefault(o, time.time())
            )
        slice_no += 1
        pause = start + slice_no / 10 - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        if slice_no % 600 == 0:
            say(f"{slice_no // 10} s: {len(futures)} events sent")
    for e, future in futures:
        future.get(timeout=180)  # the producer retries through outages; a failure is fatal
        sent.append(e)
    return sent


def watch_probes(svc: Services, timeline: Timeline, stop: threading.Event) -> None:
    """Look up each probe not seen yet by its order number, once a second."""
    api = svc.api
    with svc.client(5) as client:
        while not stop.wait(1.0):
            pending = [o for o in list(timeline.probes) if o not in timeline.seen]
            for order in pending:
                try:
                    page = client.get(f"{api}/api/v1/dispatches", params={"order_id": order})
                except httpx.HTTPError:
                    break  # analytics is down: try again in a second
                items = page.json()["items"] if page.status_code == 200 else []
                if items:
                    timeline.seen[order] = time.time()
                    at = datetime.fromisoformat(items[-1]["dispatched_at"].replace("Z", "+00:00"))
                    timeline.delivered[order] = at.timestamp()


STAGES = {  # stage -> (consumer group, topic it reads)
    "dispatcher": ("disparo-dispatcher", "order-events"),
    "worker": ("disparo-delivery", "dispatch-jobs"),
    "sink": ("disparo-analytics-sink", "outcomes"),
}


def watch_stages(settings: KernelSettings, timeline: Timeline, stop: threading.Event) -> None:
    """Once a second, each stage's backlog (log end minus committed): who resumes last."""
    admin, probe = lag_clients(settings, "soak")
    try:
        while not stop.wait(1.0):
            sample: dict[str, int] = {}
            for stage, (group, topic) in STAGES.items():
                try:
                    backlog = group_backlog(admin, probe, group, [PREFIX + topic])
                    sample[stage] = sum(backlog.values())
                except Exception:  # the broker is away: no sample this second
                    sample[stage] = -1
            timeline.backlogs.append((time.time(), sample))
    finally:
        admin.close()
        probe.close()


def disrupt(
    node: KafkaNode, table: ProcessTable, svc: Services, minutes: float, timeline: Timeline
) -> None:
    """Broker restarts every quarter of the run; the sink killed at 3/8, the worker at 5/8."""
    quarter = minutes * 60 / 4
    plan = [(quarter, "broker"), (1.5 * quarter, "analytics"), (2 * quarter, "broker")]
    plan += [(2.5 * quarter, "worker-0"), (3 * quarter, "broker")]
    began = time.monotonic()
    for at, what in plan:
        time.sleep(max(0.0, began + at - time.monotonic()))
        start = time.time()
        if what == "broker":
            say("restarting the broker ...")
            table.stop("kafka", grace_s=30)
            node.start(table)
            node.wait_ready(120)
        else:
            say(f"SIGKILL {what} ...")
            pid = table.pid(what)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
            # The outage lasts until the replacement holds partitions again.
            if what == "analytics":
                table.start(what, [DISPARO, "analytics"], svc.env)
                table.wait_http(what, f"{svc.api}/readyz", 120)
            else:
                port = free_port()
                table.start(
                    what, [DISPARO, "worker"], {**svc.env, "DISPARO_WORKER_PORT": str(port)}
                )
                table.wait_http(what, f"http://127.0.0.1:{port}/readyz", 120)
        timeline.outage(start)
        say(f"{what} back after {time.time() - start:.1f} s")


def read_rows(svc: Services) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    api = svc.api
    with svc.client(60) as client:
        while True:
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = client.get(f"{api}/api/v1/dispatches", params=params).json()
            rows.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return rows


def settle(svc: Services, expected: int, timeout_s: float = 300) -> None:
    """Wait until the row count reaches `expected` or stops moving for a minute."""
    last, moved = -1, time.monotonic()
    deadline = time.monotonic() + timeout_s
    client = svc.client()
    while time.monotonic() < deadline:
        total = int(client.get(f"{svc.api}/api/v1/dispatches/summary").json()["total"])
        if total >= expected:
            return
        if total != last:
            last, moved = total, time.monotonic()
        elif time.monotonic() - moved > 60:
            return
        time.sleep(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=20.0, help="length of the load")
    p.add_argument("--rate", type=int, default=300, help="events published per second")
    p.add_argument("--logs", type=Path, help="keep the services' logs (INFO level) here")
    args = p.parse_args()
    libs = provision_jars(REPO_ROOT / ".local" / "kafka")
    timeline = Timeline()
    with nginx() as receiver, tempfile.TemporaryDirectory(prefix="disparo-soak-") as tmp:
        home = Path(tmp)
        node = KafkaNode(libs, home / "kafka", port=free_port(), controller_port=free_port())
        table = ProcessTable(home / "run")
        node.start(table)
        try:
            node.wait_ready(90)
            settings = KernelSettings(kafka_bootstrap=node.bootstrap, topic_prefix=PREFIX)
            level = {"DISPARO_LOG_LEVEL": "INFO"} if args.logs else {}
            with services(node.bootstrap, home, 1, table, **level) as svc:
                events, rows = run(args, node, table, svc, receiver.url, timeline, settings)
            timeline.posts = posts_per_second(receiver.access_log)
            if args.logs:
                args.logs.mkdir(parents=True, exist_ok=True)
                for log in table.run_dir.glob("*.log"):
                    shutil.copy(log, args.logs / log.name)
        finally:
            table.stop("kafka", grace_s=30)
    report(events, rows, timeline, args)


def run(
    args: argparse.Namespace,
    node: KafkaNode,
    table: ProcessTable,
    svc: Services,
    url: str,
    timeline: Timeline,
    settings: KernelSettings,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rule = svc.active_rule(name="soak", event_types=["*"], url=f"{url}/hook")
    stop = threading.Event()
    threads = [
        threading.Thread(target=watch_probes, args=(svc, timeline, stop), daemon=True),
        threading.Thread(target=watch_stages, args=(settings, timeline, stop), daemon=True),
        threading.Thread(
            target=disrupt, args=(node, table, svc, args.minutes, timeline), daemon=True
        ),
    ]
    for thread in threads:
        thread.start()
    publisher = Publisher(settings)
    say(f"publishing {args.rate} events/s for {args.minutes:g} min ...")
    events = publish_load(publisher, args.rate, args.minutes * 60, timeline)
    publisher.close()
    threads[2].join()
    say(f"{len(events)} events published; waiting for their rows ...")
    settle(svc, len(events))
    time.sleep(3)
    stop.set()
    threads[0].join()
    threads[1].join()
    rows = read_rows(svc)
    expected = {dispatch_id_for(uuid.UUID(e["event_id"]), rule["id"]) for e in events}
    return events, [r for r in rows if r["dispatch_id"] in expected]


def report(
    events: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    timeline: Timeline,
    args: argparse.Namespace,
) -> None:
    delivered = {r["dispatch_id"] for r in rows if r["status"] == "success"}
    successes = sum(r["status"] == "success" for r in rows)
    unseen = [o for o in timeline.probes if o not in timeline.seen]
    print(f"minutes={args.minutes:g} rate={args.rate}/s outages={len(timeline.outages)}")
    print(f"probes={len(timeline.probes)} probes_never_seen={len(unseen)}")
    began = min(timeline.probes.values(), default=0.0)
    print("outages_s " + " ".join(f"{a - began:.0f}-{b - began:.0f}" for a, b in timeline.outages))
    worst = " ".join(f"{d:.1f}s@{p - began:.0f}" for d, p in timeline.delays()[:5])
    print(f"worst_probe_delays {worst} (delay@seconds since the start)")
    for delay, published in timeline.delays()[:1]:
        print_resumption(timeline, began, published, published + delay)
    print(
        f"soak: events={len(events)} rows={len(rows)} lost={len(events) - len(delivered)} "
        f"duplicates={successes - len(delivered)} max_staleness_s={timeline.staleness():.1f}"
    )


def posts_per_second(access_log: Path) -> dict[int, int]:
    """Webhooks the receiver got in each second (nginx logs each request's time)."""
    counts: dict[int, int] = {}
    if access_log.exists():
        for line in access_log.read_text().splitlines():
            second = int(float(line.split()[0]))
            counts[second] = counts.get(second, 0) + 1
    return counts


def print_resumption(timeline: Timeline, began: float, published: float, seen: float) -> None:
    """The worst probe's path: its ack, then each stage's backlog second by second."""
    order = next(o for o, t in timeline.probes.items() if t == published)
    acked = timeline.acked.get(order)
    posted = timeline.delivered.get(order)
    ack = f"{acked - published:.1f}s" if acked else "never"
    post = f"{posted - published:.1f}s" if posted else "never"
    print(
        f"worst probe {order}: acked after {ack}, POSTed after {post}, "
        f"row after {seen - published:.1f}s"
    )
    samples = len(timeline.backlogs)
    print(f"backlog per stage, log end minus committed (-1 = no answer; {samples} samples):")
    for at, sample in timeline.backlogs:
        if published - 10 <= at <= seen + 2:
            stages = " ".join(f"{k}={v}" for k, v in sample.items())
            print(f"  {at - began:6.0f}s {stages}")
    print("webhooks the receiver got per second:")
    start = min((b for a, b in timeline.outages if b <= published), default=published - 10)
    for second in range(int(start) - 12, int(seen) + 2):
        print(f"  {second - began:6.0f}s {timeline.posts.get(second, 0)}")


if __name__ == "__main__":
    main()
