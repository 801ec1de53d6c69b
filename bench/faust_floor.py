"""faust's own cost per event: an agent that only forwards each record, as a process of its own.

Run by `bench.floor`: reads `--records` records already on `<prefix>in`, sends each value on
to `<prefix>out` (the dispatcher's shape with no parsing and no matching), and writes the
CPU seconds this process spent from the first record to the last into `--result`. Per event
with faust's `Topic.send` and automatic acks, or `--batched` as the dispatcher does it.
Usage: python -m bench.faust_floor --bootstrap HOST:PORT --prefix P --records N --result FILE
       --datadir DIR [--batched]
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path
from typing import Any

import faust

from disparo.loops import install_fast_loop
from dispatcher.acks import BatchAcks
from dispatcher.app import EVENT_BATCH, EVENT_BATCH_WAIT_S


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--records", type=int, required=True)
    p.add_argument("--result", type=Path, required=True)
    p.add_argument("--datadir", type=Path, required=True)
    p.add_argument(
        "--batched", action="store_true", help="as the dispatcher: batches, futures, manual acks"
    )
    args = p.parse_args()
    install_fast_loop()
    # The dispatcher's producer and consumer settings (dispatcher/app.py).
    app = faust.App(
        "floor-faust",
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        datadir=str(args.datadir),
        producer_acks=-1,
        producer_linger=0.02,
        producer_max_batch_size=512 * 1024,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        web_enabled=False,
        topic_allow_declare=True,
    )
    source = app.topic(f"{args.prefix}in", key_serializer="raw", value_serializer="raw")
    sink = app.topic(f"{args.prefix}out", key_serializer="raw", value_serializer="raw")
    seen = {"n": 0, "cpu": 0.0}

    async def done() -> None:
        await app.producer.flush()
        args.result.write_text(str(time.process_time() - seen["cpu"]))
        os.kill(os.getpid(), signal.SIGTERM)

    async def forward_batched(stream: Any) -> None:
        """The dispatcher's way (dispatcher/app.py): batches, producer futures, manual acks."""
        acks = BatchAcks(stream)
        async for events in stream.noack_take(EVENT_BATCH, within=EVENT_BATCH_WAIT_S):
            if seen["n"] == 0:
                seen["cpu"] = time.process_time()
            sent = [
                await app.producer.send(
                    f"{args.prefix}out", e.message.key, e.message.value, None, None, None
                )
                for e in events
            ]
            acks.when_sent(events, sent)
            seen["n"] += len(events)
            if seen["n"] >= args.records:
                await done()

    async def forward(stream: Any) -> None:
        async for event in stream.events():
            if seen["n"] == 0:
                seen["cpu"] = time.process_time()
            await sink.send(key=event.message.key, value=event.message.value)
            seen["n"] += 1
            if seen["n"] == args.records:
                await done()

    app.agent(source)(forward_batched if args.batched else forward)

    worker = faust.Worker(app, loglevel="warning")
    worker.spinner = None
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
