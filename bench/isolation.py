"""Isolation: a healthy endpoint's throughput alone, beside four busy ones, beside four hanging.

The local stack (broker, dispatcher, one worker, analytics) delivers `--events` events to an
nginx endpoint (`/h`), timed from nginx's access log. Phase 2 sends as many events that
four more rules also send to a second nginx (the same work as phase 3, all of it healthy);
phase 3 as many again, whose four other rules go to listeners that accept and never answer
(rule timeout 30 s). Phase 2 is the control: what five times the jobs cost on this machine.
It also prints each phase's CPU per process, the longest gap between two healthy deliveries,
and how many jobs the dispatcher parked (sent straight to a retry tier) for the hanging ones.
Last line: `isolation: solo=R/s with_busy=R/s with_hanging=R/s ratio=X ratio_same_load=Y`
(ratio = with_hanging / solo, target >= 0.8; ratio_same_load = with_hanging / with_busy).
Usage: python -m bench.isolation [--events 5000]
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import Nginx, Services, broker, nginx, say, services
from disparo.schemas import now_utc
from disparo.settings import KernelSettings
from producers.publish import Publisher


class Hanging:
    """A listener that accepts connections, reads, and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def events(n: int, event_type: str) -> list[dict[str, Any]]:
    return [
        {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "order_id": f"{event_type}-{i}",
            "order_status": "dispatched",
            "occurred_at": now_utc().isoformat(),
            "payload": {"carrier": "acme"},
        }
        for i in range(n)
    ]


def delivered_rate(
    receiver: Nginx, skip: int, n: int, timeout_s: float = 300
) -> tuple[float, float]:
    """Deliveries/s to `/h` of its requests skip..skip+n (first to last), and the longest gap."""
    deadline = time.monotonic() + timeout_s
    stamps: list[float] = []
    while time.monotonic() < deadline:
        text = receiver.access_log.read_text() if receiver.access_log.exists() else ""
        stamps = [float(line.split()[0]) for line in text.splitlines() if line.endswith(" /h")]
        if len(stamps) >= skip + n:
            window = stamps[skip : skip + n]
            gap, at = max((b - a, a - window[0]) for a, b in itertools.pairwise(window))
            say(f"longest gap {gap:.2f}s, {at:.2f}s after the phase's first delivery")
            return n / max(window[-1] - window[0], 1e-3), gap
        time.sleep(1)
    raise SystemExit(f"only {len(stamps) - skip}/{n} deliveries after {timeout_s:.0f}s")


def parked_jobs(svc: Services) -> float:
    """The dispatcher's count of jobs it sent straight to a retry tier (parked endpoints)."""
    text = httpx.get(f"{svc.dispatcher}/metrics", timeout=5).text
    families = text_string_to_metric_families(text)
    return sum(
        s.value for f in families for s in f.samples if s.name == "disparo_parked_jobs_total"
    )


def machine_busy_s() -> float:
    """CPU seconds all processes of the machine have used since boot (user+system)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return (int(fields[0]) + int(fields[1]) + int(fields[2])) / os.sysconf("SC_CLK_TCK")


class PhaseCPU:
    """CPU seconds per stack process and for the whole machine, phase by phase."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.rows: list[str] = []
        self.mark()

    def mark(self) -> None:
        self.before = {**self.svc.cpu(), "machine": machine_busy_s()}

    def phase(self, name: str, deliveries: int) -> None:
        """Record the CPU used since the last mark, per 1,000 deliveries to `/h`."""
        now = {**self.svc.cpu(), "machine": machine_busy_s()}
        used = {k: (now[k] - self.before.get(k, 0.0)) * 1000 / deliveries for k in now}
        self.rows.append(f"{name}: " + " ".join(f"{k}={v:.2f}" for k, v in used.items()))
        self.before = now


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=5000, help="events per phase")
    args = p.parse_args()
    hanging = [Hanging() for _ in range(4)]
    with (
        nginx() as receiver,
        nginx() as others,
        tempfile.TemporaryDirectory(prefix="disparo-iso-") as tmp,
        broker(Path(tmp)) as bootstrap,
        services(bootstrap, Path(tmp)) as svc,
    ):
        publisher = Publisher(KernelSettings(kafka_bootstrap=bootstrap, topic_prefix="bench."))
        svc.active_rule(name="healthy", event_types=["*"], url=f"{receiver.url}/h")
        cpu = PhaseCPU(svc)
        say(f"phase 1: {args.events} events to the healthy endpoint alone ...")
        publisher.publish_many(events(args.events, "bench.solo"))
        solo, solo_gap = delivered_rate(receiver, 0, args.events)
        cpu.phase("phase 1", args.events)
        for n in range(4):
            url = f"{others.url}/busy{n}"
            svc.active_rule(name=f"busy-{n}", event_types=["bench.busy"], url=url)
        cpu.mark()
        say(f"phase 2: {args.events} events to it and to four more healthy rules ...")
        publisher.publish_many(events(args.events, "bench.busy"))
        busy, busy_gap = delivered_rate(receiver, args.events, args.events)
        cpu.phase("phase 2", args.events)
        for n, listener in enumerate(hanging):
            url = f"{listener.url}/hang"
            svc.active_rule(name=f"hang-{n}", event_types=["bench.mixed"], url=url, timeout_s=30)
        cpu.mark()
        say(f"phase 3: {args.events} events to it and to four hanging endpoints ...")
        publisher.publish_many(events(args.events, "bench.mixed"))
        mixed, mixed_gap = delivered_rate(receiver, 2 * args.events, args.events)
        cpu.phase("phase 3", args.events)
        held = sum(len(h.held) for h in hanging)
        parked = parked_jobs(svc)
        publisher.close()
    for listener in hanging:
        listener.close()
    print("CPU seconds per 1,000 healthy deliveries, by process (machine = all, broker included):")
    for row in cpu.rows:
        print(f"  {row}")
    print(f"hanging connections held: {held}")
    print(f"jobs the dispatcher parked (sent straight to a retry tier): {parked:.0f}")
    print(
        f"longest gap between healthy deliveries: solo={solo_gap:.2f}s "
        f"with_busy={busy_gap:.2f}s with_hanging={mixed_gap:.2f}s"
    )
    print(
        f"isolation: solo={solo:.0f}/s with_busy={busy:.0f}/s with_hanging={mixed:.0f}/s "
        f"ratio={mixed / solo:.2f} ratio_same_load={mixed / busy:.2f}"
    )


if __name__ == "__main__":
    main()
