"""Drive group consumers through start-ups, rebalances, commits and broker restarts until one
stalls; print where each thread waits. Run: `python -m bench.consumer_stall --minutes 20`.

Each round starts a consumer with the sink's settings in a fresh group on a 6-partition topic
(often with a second member joining and leaving to force rebalances) and expects it to read
every record within the deadline; every few rounds the broker is restarted under a running,
committing consumer. A stalled consumer is one whose poll keeps returning while it reads
nothing, which is what froze the sink. Last line: `stall: rounds=N ... stalls=N (...) ...`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import kafka
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from bench.harness import say
from deploy.local.broker import REPO_ROOT, KafkaNode, free_port, provision_jars
from deploy.local.processes import ProcessTable

PARTITIONS = 6
RECORDS = 600


@dataclass
class Member:
    """A group consumer owned by one thread: poll, commit and close happen only there."""

    bootstrap: str
    topic: str
    group: str
    poll_ms: int
    read: int = 0
    turns: int = 0
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name=f"member-{self.group}", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            metadata_max_age_ms=30000,
            session_timeout_ms=10000,
            heartbeat_interval_ms=3000,
        )
        consumer.subscribe([self.topic])
        while not self.stop.is_set():
            self.turns += 1
            try:
                polled = consumer.poll(timeout_ms=self.poll_ms)
                offsets = {}
                for tp, records in polled.items():
                    self.read += len(records)
                    offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
                if offsets:
                    consumer.commit(offsets, timeout_ms=15000)
            except KafkaError as exc:
                self.errors.append(repr(exc))
                time.sleep(0.2)
        consumer.close()


def stacks() -> str:
    """Every thread's stack, read without a signal."""
    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():
        out.append(f"--- thread {names.get(ident, ident)}")
        out.extend(line.rstrip() for line in traceback.format_stack(frame)[-8:])
    return "\n".join(out)


def produce(bootstrap: str, topic: str, count: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for i in range(count):
        producer.send(topic, key=str(i).encode(), value=b"x" * 100)
    producer.flush(30)
    producer.close()


def wait_read(member: Member, expected: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if member.read >= expected:
            return True
        time.sleep(0.05)
    return member.read >= expected


def start_round(bootstrap: str, topic: str, n: int, poll_ms: int, rebalance: bool) -> bool:
    """A fresh group reads the whole topic (a second member joins and leaves if `rebalance`)."""
    member = Member(bootstrap, topic, f"stall-start-{n}", poll_ms)
    thread = member.start()
    extra = None
    if rebalance:
        time.sleep(0.3 + (n % 5) * 0.2)
        extra = Member(bootstrap, topic, member.group, poll_ms)
        extra_thread = extra.start()
        time.sleep(1.5)
        extra.stop.set()
        extra_thread.join(20)
    expected = RECORDS * (n + 1) - (extra.read if extra else 0)
    ok = wait_read(member, expected, 30)
    if not ok:
        say(f"round {n}: read {member.read} of {expected} in 30 s; errors {member.errors[-3:]}")
        say(stacks())
    member.stop.set()
    thread.join(20)
    return ok


def restart_round(node: KafkaNode, table: ProcessTable, topic: str, n: int, poll_ms: int) -> str:
    """A committing member rides a broker restart and must read what is produced after it.

    Returns "" when it did, else which phase stalled: "start" (no records before the
    restart) or "restart" (read everything before, nothing new after).
    """
    member = Member(node.bootstrap, topic, f"stall-restart-{n}", poll_ms)
    thread = member.start()
    before = wait_read(member, RECORDS * (n + 1), 30)
    table.stop("kafka", grace_s=20)
    time.sleep(1 + n % 3)
    node.start(table)
    node.wait_ready(90)
    produce(node.bootstrap, topic, RECORDS)
    after = wait_read(member, RECORDS * (n + 2), 60)
    stalled = "" if before and after else ("start" if not before else "restart")
    if stalled:
        say(f"restart round {n}: stalled at {stalled}, read {member.read}")
        say(stacks())
    member.stop.set()
    thread.join(30)
    return stalled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="how long to run")
    parser.add_argument("--poll-ms", type=int, default=5, help="poll timeout (5 amplifies)")
    parser.add_argument("--restart-every", type=int, default=10, help="rounds per restart")
    args = parser.parse_args()
    libs = provision_jars(REPO_ROOT / ".local" / "kafka")
    with tempfile.TemporaryDirectory(prefix="disparo-stall-") as tmp:
        node = KafkaNode(libs, Path(tmp) / "kafka", port=free_port(), controller_port=free_port())
        table = ProcessTable(Path(tmp) / "run")
        node.start(table)
        try:
            node.wait_ready(90)
            say(f"kafka-python {kafka.__version__}, broker {node.bootstrap}")
            rounds, restarts, stalls = run(node, table, args)
        finally:
            table.stop("kafka", grace_s=20)
    print(
        f"stall: rounds={rounds} broker_restarts={restarts} stalls={sum(stalls.values())} "
        f"(at start-up {stalls['start']}, after a broker restart {stalls['restart']}) "
        f"kafka-python={kafka.__version__}"
    )


def run(
    node: KafkaNode, table: ProcessTable, args: argparse.Namespace
) -> tuple[int, int, dict[str, int]]:
    admin = KafkaAdminClient(bootstrap_servers=node.bootstrap)
    admin.create_topics([NewTopic("start", PARTITIONS, 1), NewTopic("restart", PARTITIONS, 1)])
    admin.close()
    deadline = time.monotonic() + args.minutes * 60
    rounds = restarts = 0
    stalls = {"start": 0, "restart": 0}
    while time.monotonic() < deadline:
        if rounds % args.restart_every == args.restart_every - 1:
            if restarts == 0:
                produce(node.bootstrap, "restart", RECORDS)
            stalled = restart_round(node, table, "restart", restarts, args.poll_ms)
            restarts += 1
        else:
            produce(node.bootstrap, "start", RECORDS)
            n = rounds - restarts
            ok = start_round(node.bootstrap, "start", n, args.poll_ms, rounds % 2 == 1)
            stalled = "" if ok else "start"
        rounds += 1
        if stalled:
            stalls[stalled] += 1
        if rounds % 10 == 0:
            say(f"{rounds} rounds, stalls {stalls}, {restarts} broker restarts")
    return rounds, restarts, stalls


if __name__ == "__main__":
    main()
