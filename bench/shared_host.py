"""Shared host: one account's webhooks beside another account's path that hangs, same host.

Customers share receiver hosts (integration platforms, API gateways). The local stack (broker,
dispatcher, one worker, analytics) delivers `--events` events of account `globex` to `/ok`
of one aiohttp receiver, alone (phase 1), then as many again while account `acme` sends as
many to `/hang` on the same host:port, which never answers within the rule's timeout (30 s).
Rates are globex's, from the receiver's own clock. Last line:
`shared_host: solo=R/s beside_hanging=R/s ratio=X` (target: ratio >= 0.8).
Usage: python -m bench.shared_host [--events 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import Services, broker, say, services
from disparo.schemas import now_utc
from disparo.settings import KernelSettings
from producers.publish import Publisher


class SharedHost:
    """One host:port: `/ok` answers at once (its arrival times kept), `/hang` after 60 s."""

    def __init__(self) -> None:
        self.ok: list[float] = []
        self.hanging = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        threading.Thread(target=self._serve, args=(started,), daemon=True).start()
        started.wait(10)
        self.url = f"http://127.0.0.1:{self.port}"

    def _serve(self, started: threading.Event) -> None:
        async def ok(_: web.Request) -> web.Response:
            self.ok.append(time.monotonic())
            return web.Response(text="ok")

        async def hang(_: web.Request) -> web.Response:
            self.hanging += 1
            await asyncio.sleep(60)
            return web.Response(text="late")

        async def start() -> None:
            app = web.Application()
            app.add_routes([web.post("/ok", ok), web.post("/hang", hang)])
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            started.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def rate(self, skip: int, n: int, timeout_s: float = 300) -> float:
        """Deliveries/s to `/ok` of its requests skip..skip+n, first to last."""
        deadline = time.monotonic() + timeout_s
        while len(self.ok) < skip + n:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(self.ok) - skip}/{n} deliveries to /ok")
            time.sleep(0.5)
        window = self.ok[skip : skip + n]
        return n / max(window[-1] - window[0], 1e-3)


def events(n: int, account: str, tag: str) -> list[dict[str, Any]]:
    return [
        {
            "event_id": str(uuid.uuid4()),
            "event_type": f"bench.{tag}",
            "order_id": f"{tag}-{i}",
            "occurred_at": now_utc().isoformat(),
            "payload": {},
            "account_id": account,
        }
        for i in range(n)
    ]


def parked_jobs(svc: Services) -> float:
    """Jobs the dispatcher parked: only acme's endpoint may have been."""
    text = httpx.get(f"{svc.dispatcher}/metrics", timeout=5).text
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "disparo_parked_jobs_total"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=5000, help="globex events per phase")
    args = p.parse_args()
    host = SharedHost()
    with (
        tempfile.TemporaryDirectory(prefix="disparo-shared-") as tmp,
        broker(Path(tmp)) as bootstrap,
        services(bootstrap, Path(tmp)) as svc,
    ):
        publisher = Publisher(KernelSettings(kafka_bootstrap=bootstrap, topic_prefix="bench."))
        svc.active_rule(name="globex", event_types=["*"], url=f"{host.url}/ok", account_id="globex")
        say(f"phase 1: {args.events} globex events alone ...")
        publisher.publish_many(events(args.events, "globex", "solo"))
        solo = host.rate(0, args.events)
        svc.active_rule(
            name="acme", event_types=["*"], url=f"{host.url}/hang", account_id="acme",
            timeout_s=30, max_attempts=1,
        )  # fmt: skip
        say(f"phase 2: {args.events} globex events beside as many acme ones that hang ...")
        publisher.publish_many(events(args.events, "acme", "hang"))
        publisher.publish_many(events(args.events, "globex", "beside"))
        beside = host.rate(args.events, args.events)
        parked = parked_jobs(svc)
        publisher.close()
    print(f"acme requests hanging on the shared host: {host.hanging}")
    print(f"jobs parked by the dispatcher (acme's endpoint only): {parked:.0f}")
    print(f"shared_host: solo={solo:.0f}/s beside_hanging={beside:.0f}/s ratio={beside / solo:.2f}")


if __name__ == "__main__":
    main()
