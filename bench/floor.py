"""The CPU floor of one delivery: what the libraries disparo stands on cost per record, alone.

Each step a delivery cannot skip is measured by itself on the same machine, with the clients
and settings the services use: kafka-python producing and consuming job-sized records on a
real broker (and the broker's CPU for them), aiokafka bare and under a faust agent that only
forwards each record (`bench.faust_floor`, a process of its own), pydantic parsing and
dumping the messages, a bare aiohttp POST to nginx (the ceiling's own loop) and the worker's
`Deliverer` doing the same through httpx, and chdb storing the rows. Summed in the shape of
the pipeline (3 records produced and 4 consumed per delivery), they give the CPU a delivery
costs before disparo's own code runs; on two cores that bounds the rate and the ratio.
Steady state (issue 29): results dropped as they come, the broker warmed by an untimed
round, chdb inserts of the sink's size (300 rows). `--bench "<make bench's cpu line>"` prints
each process's floor beside what make bench measured.
Usage: python -m bench.floor [--records 20000] [--bench "cpu_seconds_per_1000_deliveries ..."]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaConsumer
from kafka.admin import NewTopic
from pydantic_core import to_json

from analytics.history import schema
from analytics.history.event_sink import event_row
from analytics.history.sink import with_kafka_columns
from analytics.history.store import ChdbStore, ensure_schema
from bench.e2e import make_events, raw_ceiling
from bench.harness import Nginx, broker, cpu_seconds, nginx, say
from consumers.delivery import Deliverer, webhook_body
from consumers.transport import make_transport
from deploy.local.processes import ProcessTable
from disparo.kafka import ensure_topics, make_admin, make_producer
from disparo.outcome_batch import row_line
from disparo.schemas import (
    DeliveryTarget,
    DispatchJob,
    OrderEvent,
    Rule,
    generate_secret,
    parse_event,
    parse_job,
)
from disparo.settings import KernelSettings
from disparo.targets import parse_allowlist
from disparo.topics import ORDER_EVENT_PARTITIONS, Topics

CORES = 2
TARGET_RATIO = 0.25
# The sink's inserts in make bench since outcomes come in batches (issue 29): 12-16 inserts
# of attempt rows for 20,000 deliveries, so ~1,500 rows an insert.
SINK_INSERT_ROWS = 1500
BATCH_ROWS = 300  # attempt rows per batch record (one job partition, one commit cycle)
TOPIC = Topics("floor.").dispatch_jobs  # created as the stack creates it
# Per delivery: which measured step runs how many times, and in which process.
PIPELINE: dict[str, dict[str, int]] = {
    "publisher": {"kafka_python_produce": 1},
    "dispatcher": {"faust_forward_batched": 1, "parse_event": 1, "job_first_and_dump": 1},
    "worker": {
        "kafka_python_consume": 1,
        "parse_job_and_resolve": 1,
        "bare_aiohttp_post": 1,
        "outcome_row_line": 1,
    },
    "nginx": {"nginx_per_post": 1},
    "analytics": {
        "kafka_python_consume": 1,
        "parse_event": 1,
        "event_row_line": 1,
        "batch_kafka_columns": 1,
        "chdb_insert_two_rows": 1,
    },
    # Per delivery: an event and a job produced, the event consumed twice and the job once;
    # the outcome rides in a batch record of ~300 attempts (one record per commit cycle).
    "kafka": {"broker_per_produced": 2, "broker_per_consumed": 3},
}


class Meter:
    """CPU microseconds per record of this process (all its threads) and of the broker."""

    def __init__(self, broker_pid: int | None = None) -> None:
        self.broker_pid = broker_pid
        self.us: dict[str, float] = {}

    @contextmanager
    def measure(self, name: str, n: int, broker_share: str | None = None) -> Iterator[None]:
        own, kafka = time.process_time(), cpu_seconds(self.broker_pid)
        yield
        self.us[name] = (time.process_time() - own) * 1e6 / n
        if broker_share:
            self.us[broker_share] = (cpu_seconds(self.broker_pid) - kafka) * 1e6 / n
        say(f"{name}: {self.us[name]:.1f} us")

    def each(self, name: str, items: list[Any], step: Callable[[Any], Any]) -> list[Any]:
        """`step` over every item, timed with its results dropped as they come (as the
        services drop them: keeping 20,000 alive made the parses look 2.5-3.5x dearer);
        then run again, untimed, for the results the next steps need."""
        with self.measure(name, len(items)):
            for item in items:
                step(item)
        return [step(i) for i in items]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=20000)
    p.add_argument(
        "--bench",
        default="",
        help="make bench's `cpu_seconds_per_1000_deliveries ...` line, printed beside the floor",
    )
    args = p.parse_args()
    n = args.records
    meter = Meter()
    with tempfile.TemporaryDirectory(prefix="disparo-floor-") as tmp, nginx() as receiver:
        home = Path(tmp)
        rule = Rule(
            id=1, name="floor", event_types=["*"], url=f"{receiver.url}/hook",
            secret=generate_secret(),
        )  # fmt: skip
        events, jobs = messages(meter, n, rule)
        ceiling = http(meter, receiver, jobs[: min(n, 10000)])
        # The attempt's record is built inside the Deliverer (measured above): only its dump here.
        idle = Deliverer(httpx.MockTransport(lambda r: httpx.Response(200)))
        records = [idle.without_attempt(j, "success", "", status="success") for j in jobs]
        lines = meter.each("outcome_row_line", records, row_line)
        with broker(home) as bootstrap:
            meter.broker_pid = ProcessTable(home / "run").pid("kafka")
            job_bytes = [j.model_dump_json().encode() for j in jobs]
            settings = KernelSettings(kafka_bootstrap=bootstrap, topic_prefix="floor.", home=home)
            # A warm broker, as the stack's is: one round untimed, then the timed one.
            kafka_python(Meter(meter.broker_pid), settings, job_bytes, "floor-warmup")
            kafka_python(meter, settings, job_bytes)
            asyncio.run(aiokafka(meter, bootstrap, job_bytes))
            faust_forward(meter, settings, job_bytes, batched=False)
            faust_forward(meter, settings, job_bytes, batched=True)
        analytics(meter, home, events, lines)
    report(meter.us, ceiling, args.bench)


def messages(meter: Meter, n: int, rule: Rule) -> tuple[list[OrderEvent], list[DispatchJob]]:
    """`n` events parsed from JSON, and their first-attempt jobs as the worker resolves them."""
    raw = [OrderEvent.model_validate(e).model_dump_json().encode() for e in make_events(n)]
    events = meter.each("parse_event", raw, parse_event)
    dumped = meter.each(
        "job_first_and_dump", events, lambda e: DispatchJob.first(e, rule).model_dump_json()
    )
    target = DeliveryTarget.of(rule)
    return events, meter.each("parse_job_and_resolve", dumped, lambda j: _resolved(j, target))


def _resolved(raw: str, target: DeliveryTarget) -> DispatchJob:
    return parse_job(raw.encode()).with_target(target)


def http(meter: Meter, receiver: Nginx, jobs: list[DispatchJob]) -> float:
    """The ceiling (bare aiohttp), httpx's API over the workers' transport (the request built,
    sent and its answer read, signed headers ready), then the worker's `Deliverer`."""
    bodies = [webhook_body(j) for j in jobs]
    nginx_before = receiver.cpu()
    with meter.measure("bare_aiohttp_post", len(jobs)):
        ceiling = asyncio.run(raw_ceiling(f"{receiver.url}/hook", bodies))
    meter.us["nginx_per_post"] = (receiver.cpu() - nginx_before) * 1e6 / len(jobs)
    headers = [Deliverer._headers(j, b) for j, b in zip(jobs, bodies, strict=True)]
    with meter.measure("httpx_post", len(jobs)):
        asyncio.run(_httpx_posts(jobs, bodies, headers))
    with meter.measure("deliverer_post_httpx", len(jobs)):
        asyncio.run(_deliver_all(jobs))
    return ceiling


async def _httpx_posts(
    jobs: list[DispatchJob], bodies: list[bytes], headers: list[dict[str, str]]
) -> None:
    transport = make_transport(64, parse_allowlist("127.0.0.0/8:*"))
    queue = iter(zip(jobs, bodies, headers, strict=True))

    async def loop() -> None:
        for job, body, head in queue:
            request = Deliverer._request(job, body, head)
            (await transport.handle_async_request(request)).read()

    await asyncio.gather(*(loop() for _ in range(64)))
    await transport.aclose()


async def _deliver_all(jobs: list[DispatchJob], concurrency: int = 64) -> None:
    allowed = parse_allowlist("127.0.0.0/8:*")
    transport = make_transport(concurrency, allowed)
    deliverer = Deliverer(transport, allowlist=allowed)
    queue = iter(jobs)

    async def loop() -> None:
        for job in queue:
            await deliverer.deliver(job)

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    await transport.aclose()


def kafka_python(
    meter: Meter, settings: KernelSettings, values: list[bytes], group: str = "floor-kafka-python"
) -> None:
    """Produce with the services' producer settings, consume as the worker does."""
    ensure_topics(settings)  # the broker's own topics are warm and created like the stack's
    producer = make_producer(settings, client_id="floor", linger_ms=20)
    keys = [str(uuid.uuid4()).encode() for _ in values]
    with meter.measure("kafka_python_produce", len(values), "broker_per_produced"):
        for key, value in zip(keys, values, strict=True):
            producer.send(TOPIC, key=key, value=value)
        producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        TOPIC,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_min_bytes=64 * 1024,
        fetch_max_wait_ms=50,
        max_poll_records=2000,
    )
    with meter.measure("kafka_python_consume", len(values), "broker_per_consumed"):
        seen = 0
        while seen < len(values):
            seen += sum(len(r) for r in consumer.poll(timeout_ms=500).values())
            consumer.commit()
    consumer.close()


async def aiokafka(meter: Meter, bootstrap: str, values: list[bytes]) -> None:
    """Produce as faust's producer is set up in the dispatcher, then consume."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    keys = [str(uuid.uuid4()).encode() for _ in values]
    with meter.measure("aiokafka_produce", len(values)):
        sent = [
            await producer.send(TOPIC, key=k, value=v) for k, v in zip(keys, values, strict=True)
        ]
        await asyncio.gather(*sent)
    await producer.stop()
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, group_id="floor-aiokafka", auto_offset_reset="earliest"
    )
    await consumer.start()
    total = 2 * len(values)  # both producers' records are on the topic
    with meter.measure("aiokafka_consume", total):
        seen = 0
        while seen < total:
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            seen += sum(len(r) for r in batch.values())
    await consumer.stop()


def faust_forward(
    meter: Meter, settings: KernelSettings, values: list[bytes], batched: bool
) -> None:
    """faust's consume-and-send per event, measured inside a faust worker (bench.faust_floor)."""
    name = "faust_forward_batched" if batched else "faust_forward"
    prefix = f"floor.{name}."
    admin = make_admin(settings)
    admin.create_topics(
        [NewTopic(f"{prefix}{t}", ORDER_EVENT_PARTITIONS, 1) for t in ("in", "out")]
    )
    admin.close()
    producer = make_producer(settings, client_id="floor-faust", linger_ms=20)
    for value in values:
        producer.send(f"{prefix}in", key=str(uuid.uuid4()).encode(), value=value)
    producer.close()
    result = settings.home / f"{name}.txt"
    say(f"{name}: a faust worker forwards every record ...")
    subprocess.run(
        [
            sys.executable, "-m", "bench.faust_floor", "--bootstrap", settings.kafka_bootstrap,
            "--prefix", prefix, "--records", str(len(values)), "--result", str(result),
            "--datadir", str(settings.home / name), *(["--batched"] if batched else []),
        ],
        check=False, timeout=600, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    if not result.exists():
        raise SystemExit(f"the faust worker did not forward every record ({name})")
    meter.us[name] = float(result.read_text()) * 1e6 / len(values)
    say(f"{name}: {meter.us[name]:.1f} us")


def analytics(meter: Meter, home: Path, events: list[OrderEvent], lines: list[bytes]) -> None:
    """Add the Kafka columns to batches of attempt rows, build the events' rows, insert both
    into embedded ClickHouse as the sinks do."""
    batches = [b"".join(lines[i : i + BATCH_ROWS]) for i in range(0, len(lines), BATCH_ROWS)]
    with meter.measure("batch_kafka_columns", len(lines)):
        spliced = [with_kafka_columns(b, 0, n) for n, b in enumerate(batches)]
    numbered = list(enumerate(events))
    event_lines = meter.each(
        "event_row_line",
        numbered,
        lambda ie: to_json(event_row(ie[1], ie[1].occurred_at, 0, ie[0])) + b"\n",
    )
    attempts = b"".join(spliced).splitlines(keepends=True)
    store = ChdbStore(home / "chdb")
    ensure_schema(store)
    with meter.measure("chdb_insert_two_rows", len(attempts)):
        for i in range(0, len(attempts), SINK_INSERT_ROWS):
            part = b"".join(attempts[i : i + SINK_INSERT_ROWS])
            store.insert_lines(schema.TABLE, part, f"a{i}")
            part = b"".join(event_lines[i : i + SINK_INSERT_ROWS])
            store.insert_lines(schema.EVENTS_TABLE, part, f"e{i}")
    store.close()


def measured_us(line: str) -> dict[str, float]:
    """make bench's CPU seconds per 1,000 deliveries, as microseconds per delivery."""
    pairs = (part.split("=") for part in line.split()[1:] if "=" in part)
    return {name.removesuffix("-0"): float(v) * 1000 for name, v in pairs if name != "total"}


def report(us: dict[str, float], ceiling: float, bench_line: str = "") -> None:
    """Each step, each process's floor per delivery, and what they allow on two cores."""
    print(f"machine: {platform.node()} {platform.machine()} python={platform.python_version()}")
    print("us_per_record " + " ".join(f"{k}={v:.1f}" for k, v in sorted(us.items())))
    per_process = {
        process: sum(us[step] * times for step, times in steps.items())
        for process, steps in PIPELINE.items()
    }
    floor = sum(per_process.values())
    print("floor_us_per_delivery " + " ".join(f"{k}={v:.0f}" for k, v in per_process.items()))
    if bench_line:
        measured = measured_us(bench_line)
        print(
            "floor_beside_make_bench "
            + " ".join(f"{k}={v:.0f}/{measured.get(k, 0):.0f}" for k, v in per_process.items())
            + " (floor/measured, us per delivery)"
        )
    budget = CORES * 1e6 / (TARGET_RATIO * ceiling)
    print(f"raw_ceiling_per_s={ceiling:,.0f} budget_us_for_ratio_{TARGET_RATIO}={budget:.0f}")
    for post in ("bare_aiohttp_post", "httpx_post", "deliverer_post_httpx"):
        total = floor - us["bare_aiohttp_post"] + us[post]
        print(
            f"floor_us={total:.0f} with {post} best_rate_per_s={CORES * 1e6 / total:,.0f} "
            f"best_ratio={CORES * 1e6 / total / ceiling:.3f}"
        )


if __name__ == "__main__":
    main()
