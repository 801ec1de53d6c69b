"""Delivery throughput with 1, 2 and 3 worker processes against the same receiver (nginx).

For each worker count: a fresh topic prefix, the workers started and holding partitions,
then N dispatch jobs published straight to dispatch-jobs; deliveries/s is measured by nginx's
own clock from the first to the N-th POST, so the dispatcher and the sink are not in the
measurement (they are benchmarked by bench.e2e). Prints a table.
Usage: python -m bench.scale [--jobs 20000] [--max-workers 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from bench.e2e import make_events
from bench.harness import DISPARO, broker, cpu_seconds, nginx, say
from deploy.local.broker import free_port
from deploy.local.processes import ProcessTable
from disparo.kafka import ensure_topics, make_producer
from disparo.rule_codec import encode_rule
from disparo.schemas import DispatchJob, OrderEvent, Rule, generate_secret
from disparo.secret_box import SecretBox, new_key_text
from disparo.settings import KernelSettings
from disparo.topics import Topics


def run_once(
    bootstrap: str, home: Path, url: str, access_log: Path, workers: int, n: int
) -> dict[str, float]:
    """Deliver `n` jobs with `workers` processes; deliveries/s and CPU seconds per 1k."""
    prefix = f"scale{workers}."
    settings = KernelSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix, home=home)
    ensure_topics(settings)
    rule = Rule(id=1, name="scale", event_types=["*"], url=url, secret=generate_secret())
    secret_key = new_key_text()  # the workers read the rule, sealed, from the rules topic
    rules_producer = make_producer(settings, client_id="bench-rules")
    sealed = encode_rule(rule, SecretBox(secret_key))
    rules_producer.send(Topics(prefix).rules, key=b"1", value=sealed).get(30)
    rules_producer.close(10)
    jobs = [DispatchJob.first(OrderEvent.model_validate(e), rule) for e in make_events(n)]
    table = ProcessTable(home / f"run-{workers}")
    names = [f"worker-{i}" for i in range(workers)]
    access_log.write_text("")
    env = {
        **os.environ,
        "DISPARO_KAFKA_BOOTSTRAP": bootstrap,
        "DISPARO_TOPIC_PREFIX": prefix,
        "DISPARO_HOME": str(home),
        "DISPARO_WORKER_GROUP": f"{prefix}delivery",
        "DISPARO_TARGET_ALLOWLIST": "127.0.0.0/8:*",
        "DISPARO_LOG_LEVEL": "WARNING",
        "DISPARO_SECRET_KEY": secret_key,
    }
    try:
        for name in names:
            port = free_port()
            table.start(name, [DISPARO, "worker"], {**env, "DISPARO_WORKER_PORT": str(port)})
            table.wait_http(name, f"http://127.0.0.1:{port}/readyz", 90)
        time.sleep(3)  # let the group settle: the last join rebalances everyone
        cpu_before = sum(cpu_seconds(table.pid(name)) for name in names)
        producer = make_producer(settings, client_id="bench-scale")
        topic = Topics(prefix).dispatch_jobs
        for job in jobs:
            producer.send(
                topic, key=job.event.order_id.encode(), value=job.model_dump_json().encode()
            )
        producer.flush()
        producer.close()
        stamps = _wait_posts(access_log, n, timeout_s=max(120, n / 50))
        cpu = sum(cpu_seconds(table.pid(name)) for name in names) - cpu_before
    finally:
        for name in names:
            table.stop(name, grace_s=20)
    rate = (n - 1) / (stamps[-1] - stamps[0])
    return {"rate": rate, "cpu_per_1k": cpu / n * 1000}


def _wait_posts(access_log: Path, n: int, timeout_s: float) -> list[float]:
    """nginx's receive times of the first `n` POSTs (its log is flushed every second)."""
    deadline = time.monotonic() + timeout_s
    last_report = 0.0
    while time.monotonic() < deadline:
        lines = access_log.read_text().splitlines()
        if len(lines) >= n:
            return sorted(float(line.split()[0]) for line in lines)[:n]
        if time.monotonic() - last_report > 5:
            say(f"  {len(lines)}/{n} POSTs")
            last_report = time.monotonic()
        time.sleep(0.5)
    raise SystemExit(f"only {len(lines)}/{n} POSTs after {timeout_s:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="dispatch jobs per run")
    parser.add_argument("--max-workers", type=int, default=3, help="runs with 1..N workers")
    args = parser.parse_args()
    results = {}
    with nginx() as receiver, tempfile.TemporaryDirectory(prefix="disparo-scale-") as tmp:
        home = Path(tmp)
        with broker(home) as bootstrap:
            for workers in range(1, args.max_workers + 1):
                say(f"{workers} worker(s): {args.jobs} jobs ...")
                results[workers] = run_once(
                    bootstrap, home, f"{receiver.url}/hook", receiver.access_log, workers, args.jobs
                )
                say(f"  {results[workers]['rate']:,.0f} deliveries/s")
    print(
        f"machine: {platform.node()} {platform.machine()} cpus={os.cpu_count()} "
        f"python={platform.python_version()} jobs={args.jobs}"
    )
    print(f"{'workers':>7} | {'deliveries/s':>12} | {'speed-up':>8} | {'worker CPU s / 1k':>17}")
    print(f"{'-' * 7}-+-{'-' * 12}-+-{'-' * 8}-+-{'-' * 17}")
    for workers, r in results.items():
        speedup = r["rate"] / results[1]["rate"]
        print(f"{workers:>7} | {r['rate']:>12,.0f} | {speedup:>7.2f}x | {r['cpu_per_1k']:>17.2f}")


if __name__ == "__main__":
    main()
