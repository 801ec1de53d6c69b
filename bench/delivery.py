"""Delivery-only benchmark: the worker's POST path against nginx, without Kafka.

Compares the Deliverer (httpx request/response over the aiohttp transport, as the worker
runs) with the same POSTs through `httpx.AsyncClient` on that transport and on httpx's own
pool, at several concurrencies. Usage: python -m bench.delivery [--posts 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx

from bench.harness import nginx, say
from consumers.delivery import Deliverer, webhook_body
from consumers.transport import make_transport
from disparo.schemas import (
    DeliveryTarget,
    DispatchJob,
    OrderEvent,
    Rule,
    generate_secret,
    now_utc,
)
from disparo.targets import parse_allowlist


def jobs(url: str, n: int) -> list[DispatchJob]:
    rule = Rule(id=1, name="b", event_types=["*"], url=url, secret=generate_secret())
    return [
        DispatchJob.first(
            OrderEvent(
                event_id=uuid.uuid4(),
                event_type="order.dispatched",
                order_id=f"B-{i}",
                occurred_at=now_utc(),
                payload={"n": i},
            ),
            rule,
        ).with_target(DeliveryTarget.of(rule))
        for i in range(n)
    ]


async def rate(
    post: Callable[[DispatchJob], Awaitable[object]], batch: list[DispatchJob], concurrency: int
) -> float:
    limit = asyncio.Semaphore(concurrency)

    async def one(job: DispatchJob) -> None:
        async with limit:
            await post(job)

    started = time.perf_counter()
    await asyncio.gather(*(one(j) for j in batch))
    return len(batch) / (time.perf_counter() - started)


async def measure(url: str, n: int, concurrency: int) -> dict[str, float]:
    batch = jobs(url, n)
    local = parse_allowlist("127.0.0.0/8:*")
    transport = make_transport(concurrency, local)
    deliverer = Deliverer(transport, allowlist=local)
    out = {"deliverer (transport direct)": await rate(deliverer.deliver, batch, concurrency)}
    await transport.aclose()
    for name, client in (
        (
            "httpx.AsyncClient + aiohttp transport",
            httpx.AsyncClient(transport=make_transport(concurrency)),
        ),
        (
            "httpx.AsyncClient, httpx pool",
            httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)),
        ),
    ):

        async def post(job: DispatchJob, client: httpx.AsyncClient = client) -> object:
            return await client.post(job.target.url, content=webhook_body(job))

        out[name] = await rate(post, batch, concurrency)
        await client.aclose()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--posts", type=int, default=5000)
    args = p.parse_args()
    with nginx() as receiver:
        for concurrency in (4, 16, 64, 256):
            say(f"concurrency {concurrency} ...")
            for name, value in asyncio.run(
                measure(f"{receiver.url}/hook", args.posts, concurrency)
            ).items():
                print(f"concurrency={concurrency:<4} {name:40} {value:8,.0f} POST/s")


if __name__ == "__main__":
    main()
