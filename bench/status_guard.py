"""Late scans under load: does any customer see an order's status go back?

Publishes `--orders` orders x 5 statuses (created -> dispatched -> in_transit ->
out_for_delivery -> delivered), the orders interleaved, with `--late` of the non-final
statuses pulled out and published after everything else (late carrier scans). A receiver in
this process checks every body it is sent: a status ranked below one it already got for the
order is a regression. Run once with the rule's status guard (and `ordering: per_order`) and
once without it, on the same events.
Usage: python -m bench.status_guard [--orders 10000] [--late 0.05] [--ordering per_order]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from bench.harness import Services, broker, say, services
from deploy.local.broker import free_port
from disparo.settings import KernelSettings
from producers.publish import Publisher

STATUSES = ("created", "dispatched", "in_transit", "out_for_delivery", "delivered")
RANK = {s: i for i, s in enumerate(STATUSES)}


@dataclass
class Checker:
    """What the receiver saw: per order the highest status rank, and every step back."""

    highest: dict[str, int] = field(default_factory=dict)
    received: int = 0
    regressions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, order_id: str, status: str) -> None:
        rank = RANK[status]
        with self.lock:
            self.received += 1
            if rank < self.highest.get(order_id, -1):
                self.regressions += 1
            else:
                self.highest[order_id] = rank


@contextmanager
def receiver(checker: Checker) -> Iterator[str]:
    """An HTTP receiver on loopback that answers 200 and tells `checker` each body."""

    async def hook(request: web.Request) -> web.Response:
        data = json.loads(await request.read())["data"]
        checker.saw(data["order_id"], data["order_status"])
        return web.Response(text="ok")

    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(web.Application())
    runner.app.router.add_post("/hook", hook)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def scans(orders: int, late: float, seed: int = 7) -> tuple[list[dict[str, object]], int]:
    """Every order's five statuses, orders interleaved; `late` of the non-final ones moved to
    the end. Returns the events in publish order and how many were moved."""
    pick = random.Random(seed)
    on_time: list[dict[str, object]] = []
    delayed: list[dict[str, object]] = []
    for status in STATUSES:
        for n in range(orders):
            event: dict[str, object] = {
                "event_id": str(uuid.uuid4()),
                "event_type": "tracking.updated",
                "order_id": f"SG-{n:06d}",
                "order_status": status,
                "occurred_at": "2026-12-07T12:00:00Z",
                "payload": {"carrier": f"carrier-{n % 7}"},
            }
            is_late = status != STATUSES[-1] and pick.random() < late
            (delayed if is_late else on_time).append(event)
    pick.shuffle(delayed)
    return on_time + delayed, len(delayed)


def run(args: argparse.Namespace, guard: bool) -> dict[str, float]:
    events, moved = scans(args.orders, args.late)
    checker = Checker()
    with (
        receiver(checker) as url,
        tempfile.TemporaryDirectory(prefix="disparo-guard-") as tmp,
        broker(Path(tmp)) as bootstrap,
        services(bootstrap, Path(tmp), args.workers) as svc,
    ):
        lifecycle = {"statuses": list(STATUSES), "allowed_back": []}
        put = svc.client().put(
            f"{svc.api}/api/v1/accounts/default", json={"name": "default", "lifecycle": lifecycle}
        )
        if put.status_code != 200:
            raise SystemExit(f"the lifecycle was refused: {put.text}")
        svc.active_rule(
            name="scans",
            event_types=["*"],
            url=url,
            ordering=args.ordering,
            status_guard="forward_only" if guard else "off",
        )
        publisher = Publisher(
            KernelSettings(kafka_bootstrap=bootstrap, topic_prefix="bench.", home=Path(tmp))
        )
        say(f"guard={'on' if guard else 'off'}: publishing {len(events)} scans ({moved} late)")
        started = time.time()
        for at in range(0, len(events), 5000):
            publisher.publish_many(events[at : at + 5000])
        publisher.close()
        ended = _wait_ended(svc, len(events), args.timeout)
        took = time.time() - started
        summary = svc.client().get(f"{svc.api}/api/v1/dispatches/summary").json()
    return {
        "events": len(events),
        "late": moved,
        "received": checker.received,
        "regressions_at_receiver": checker.regressions,
        "regressed_rows": summary["regressed"],
        "failed": summary["failed"],
        "rows": ended,
        "seconds": took,
    }


def _wait_ended(svc: Services, n: int, timeout_s: float) -> int:
    """Wait until every dispatch has a final row (sent or regressed); the rows counted."""
    client = svc.client()
    deadline = time.monotonic() + timeout_s
    last = 0.0
    while time.monotonic() < deadline:
        s = client.get(f"{svc.api}/api/v1/dispatches/summary").json()
        ended = int(s["total"]) - int(s["failed"]) + int(s["regressed"])
        if ended >= n:
            return ended
        if time.monotonic() - last > 5:
            say(f"  {ended}/{n} ended")
            last = time.monotonic()
        time.sleep(0.5)
    raise SystemExit(f"not every dispatch ended within {timeout_s:.0f}s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=10_000)
    p.add_argument("--late", type=float, default=0.05, help="share of statuses published late")
    p.add_argument("--ordering", choices=("none", "per_order"), default="per_order")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait for each run")
    p.add_argument("--only-guarded", action="store_true", help="skip the run without the guard")
    args = p.parse_args()
    print(f"machine: {platform.node()} {platform.machine()} python={platform.python_version()}")
    for guard in (True,) if args.only_guarded else (True, False):
        r = run(args, guard)
        print(
            f"status_guard={'forward_only' if guard else 'off'} ordering={args.ordering} "
            f"orders={args.orders} events={r['events']:.0f} late={r['late']:.0f} "
            f"received={r['received']:.0f} regressions_at_receiver="
            f"{r['regressions_at_receiver']:.0f} regressed_rows={r['regressed_rows']:.0f} "
            f"failed={r['failed']:.0f} seconds={r['seconds']:.1f} "
            f"({r['events'] / r['seconds']:,.0f} events/s)"
        )


if __name__ == "__main__":
    main()
