"""The control plane under a heavy ask, on a filled history: a 30-day backfill, ten CSV
exports and live traffic at once; /healthz latency, the sink's pace, the task's, memory.

Fills `--days` x `--per-day` attempts and the events behind them (chdb, bench.fill) for
`--accounts` accounts, starts a broker and the services on that store (nginx answers every
webhook), then at once: the backfill of a new rule taking every event of one account over
the days kept (at most the 100,000 one backfill takes), five CSV exports of the attempts of
30 days, five of the undelivered orders of 7 days, and live events at `--rate` a second
that the sink must keep storing. Prints /healthz latency (sampled every 0.1 s), the rows the
sink stored meanwhile, the backfill's pace, each export's time and the analytics process's
peak memory.
Usage: python -m bench.control [--days 30] [--per-day 30000] [--accounts 10] [--rate 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from analytics.history import schema
from analytics.history.store import ChdbStore, ensure_schema
from bench.fill import Mix
from bench.harness import Services, broker, nginx, say, services
from bench.history import fill
from disparo.settings import KernelSettings
from producers.publish import Publisher


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _peak_rss_mib(pid: int | None) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    found = [line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(found[0]) / 1024 if found else 0.0


def _probe(url: str, stop: threading.Event, samples: list[tuple[float, int]]) -> None:
    with httpx.Client(timeout=30) as client:
        while not stop.wait(0.1):
            started = time.perf_counter()
            status = client.get(f"{url}/healthz").status_code
            samples.append(((time.perf_counter() - started) * 1000, status))


def _live(svc: Services, bootstrap: str, rate: int, stop: threading.Event) -> int:
    """Publish live events at `rate` a second until `stop`; how many were published."""
    settings = KernelSettings(kafka_bootstrap=bootstrap, topic_prefix="bench.")
    publisher = Publisher(settings)
    sent = 0
    try:
        while not stop.is_set():
            started = time.monotonic()
            batch = [
                {
                    "event_id": str(uuid.uuid4()),
                    "event_type": "live.tick",
                    "order_id": f"LIVE-{sent + i}",
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "payload": {"n": sent + i},
                }
                for i in range(max(1, rate // 10))
            ]
            publisher.publish_many(batch)
            sent += len(batch)
            stop.wait(max(0.0, 0.1 - (time.monotonic() - started)))
    finally:
        publisher.close()
    return sent


def _backfill(svc: Services, rule_id: int) -> tuple[dict[str, Any], float]:
    """Run the backfill of the days kept to its end (polling its task); result, duration."""
    started = time.perf_counter()
    with svc.client(timeout_s=120) as client:
        body = client.post(f"{svc.api}/api/v1/rules/{rule_id}/backfill", json={}).json()
        while "task_id" in body and body.get("state") == "running":
            time.sleep(0.5)
            body = client.get(f"{svc.api}{body['status_url']}").json()
    result = body.get("result", body) if "task_id" in body else body
    return result, time.perf_counter() - started


def _export(svc: Services, path: str) -> tuple[float, int, int]:
    started = time.perf_counter()
    with svc.client(timeout_s=600) as client:
        answer = client.get(f"{svc.api}{path}")
    return time.perf_counter() - started, answer.status_code, len(answer.content)


def run(args: argparse.Namespace, home: Path) -> None:
    store = ChdbStore(home / "clickhouse")
    ensure_schema(store)
    mix = Mix(per_day=args.per_day, accounts=args.accounts)
    for table in (schema.TABLE, schema.EVENTS_TABLE):
        say(f"filling {args.days} days x {args.per_day:,} rows of {table} ...")
        fill(store, args.days, mix, table)
    store.close()
    with nginx() as receiver, broker(home / "kafka") as bootstrap, services(bootstrap, home) as svc:
        svc.active_rule(name="live", event_types=["live.tick"], url=f"{receiver.url}/live")
        late = svc.active_rule(
            name="late", event_types=["*"], url=f"{receiver.url}/late", account_id="acct-0"
        )
        stop = threading.Event()
        samples: list[tuple[float, int]] = []
        prober = threading.Thread(target=_probe, args=(svc.api, stop, samples))
        rows_before = _metric(svc.api, "disparo_sink_rows_total")
        prober.start()
        started = time.perf_counter()
        exports = ["/api/v1/dispatches/export.csv?from=" + _days_ago(29)] * 5 + [
            "/api/v1/orders/undelivered/export.csv"
        ] * 5
        with ThreadPoolExecutor(len(exports) + 2) as pool:
            live = pool.submit(_live, svc, bootstrap, args.rate, stop)
            backfill = pool.submit(_backfill, svc, late["id"])
            downloads = [pool.submit(_export, svc, path) for path in exports]
            exported = [d.result() for d in downloads]
            result, backfill_s = backfill.result()
            stop.set()
            published = live.result()
        prober.join()
        load_s = time.perf_counter() - started
        rows_during = _metric(svc.api, "disparo_sink_rows_total") - rows_before
        peak = _peak_rss_mib(svc.table.pid("analytics"))
    latencies = sorted(ms for ms, _ in samples)
    failed = sum(1 for _, status in samples if status != 200)
    print(
        f"machine: {platform.node()} {platform.machine()} cpus={os.cpu_count()} "
        f"python={platform.python_version()} days={args.days} per_day={args.per_day:,} "
        f"accounts={args.accounts}"
    )
    print(
        f"healthz: {len(samples)} probes, {failed} not 200, p50 {_pct(latencies, 50):.1f} ms, "
        f"p99 {_pct(latencies, 99):.1f} ms, max {latencies[-1] if latencies else 0:.1f} ms"
    )
    print(
        f"backfill: {result} in {backfill_s:.1f} s "
        f"({result.get('queued', 0) / max(backfill_s, 1e-9):,.0f} jobs/s)"
    )
    for path, (seconds, status, size) in zip(exports, exported, strict=True):
        print(f"export {path.split('?')[0]}: {status} {size / 1e6:.1f} MB in {seconds:.1f} s")
    print(
        f"sink: {rows_during:,.0f} rows stored during the {load_s:.1f} s of load "
        f"({rows_during / load_s:,.0f}/s); {published:,} live events published"
    )
    print(f"analytics peak RSS: {peak:,.0f} MiB")


def _days_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pct(values: list[float], pct: int) -> float:
    if not values:
        return 0.0
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100)[pct - 1] if pct < 100 else values[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=30_000)
    parser.add_argument("--accounts", type=int, default=10)
    parser.add_argument("--rate", type=int, default=200, help="live events a second")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="disparo-control-") as tmp:
        run(args, Path(tmp))


if __name__ == "__main__":
    main()
