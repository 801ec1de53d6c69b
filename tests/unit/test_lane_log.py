"""Order lanes stored in batch records: what is read back, and what compaction may remove."""

from __future__ import annotations

import random
import zlib

from consumers.lane_keeper import LaneKeeper, Lanes, LaneWrite
from consumers.lane_log import BATCH_PREFIX, StoredLanes, decode_batch
from consumers.lanes import Lane
from disparo.lifecycle import Lifecycle
from disparo.schemas import DeliveryTarget, DispatchJob, now_utc
from tests.factories import attempt, event, rule

LIFECYCLE = Lifecycle(statuses=("dispatched", "in_transit", "delivered", "returned"))
GUARDED = Lanes(ordered=False, supersede=False, guard=LIFECYCLE)
MATCHED = rule(status_guard="forward_only")


def delivered(keeper: LaneKeeper, order_id: str, status: str, now: float) -> None:
    """One guarded dispatch of `order_id` answered 2xx."""
    job = DispatchJob.first(event(order_id=order_id, order_status=status), MATCHED)
    job = job.with_target(DeliveryTarget.of(MATCHED))
    partition = zlib.crc32(order_id.encode()) % 3
    keeper.admit(job, GUARDED, partition, None)
    ok = attempt(order_id, now_utc(), "success", final=True)
    keeper.settled(job, GUARDED, ok, partition, now=now)


def read_back(records: list[LaneWrite]) -> StoredLanes:
    stored = StoredLanes()
    for partition, key, value in records:
        stored.apply(partition, key, value)
    return stored


def compacted(records: list[LaneWrite]) -> list[LaneWrite]:
    """What log compaction leaves: the last record of each key, tombstones removed."""
    last = {key: n for n, (_, key, _) in enumerate(records)}
    return [r for n, r in enumerate(records) if last[r[1]] == n and r[2] is not None]


def test_the_records_read_back_as_the_keeper_holds_its_lanes_before_and_after_compaction() -> None:
    rng = random.Random(31)
    keeper = LaneKeeper(keep_s=5, guard_keep_s=40)
    keeper.gain([0, 1, 2], StoredLanes())
    topic: list[LaneWrite] = []
    now = 0.0
    for step in range(4000):
        now += 0.05
        order = f"O-{rng.randrange(1500)}"
        delivered(keeper, order, rng.choice(LIFECYCLE.statuses), now)
        if step % 25 == 0:
            topic += keeper.snapshot(now=now)
    topic += keeper.snapshot(now=now)
    topic += keeper.snapshot(now=now)  # the sparse records' last lanes written again
    assert keeper.dirty == set()
    kept = {key: keeper.lanes[key] for key in keeper.holders.of}
    assert len(kept) > 500
    assert sum(1 for _, _, value in topic if value is None) > 100  # records freed
    for records in (topic, compacted(topic)):
        stored = read_back(records)
        assert {k: v for k, v in stored.lanes.items() if k in kept} == kept
        for key, lane in stored.lanes.items():  # any other is an expired lane's old state
            if key not in kept:
                assert lane.idle_since is not None
                assert now - lane.idle_since > keeper.guard_keep_s
    live = compacted(topic)
    assert {key for _, key, _ in live} == set(keeper.holders.records)
    stored_entries = sum(len(decode_batch(value)) for _, _, value in live if value is not None)
    assert stored_entries <= 2 * len(kept)  # no record is mostly lanes that moved on


def test_a_record_of_the_earlier_format_is_freed_once_its_lane_is_written_in_a_batch() -> None:
    keeper = LaneKeeper(keep_s=5, guard_keep_s=40)
    old = Lane(MATCHED.id, "X", zlib.crc32(b"X") % 3, customer_status="dispatched", idle_since=1)
    stored = StoredLanes()
    stored.apply(old.partition, f"{MATCHED.id}/X".encode(), old.encode())
    keeper.gain([0, 1, 2], stored)
    delivered(keeper, "X", "delivered", now=2.0)
    [(partition, key, value), freed] = keeper.snapshot(now=3.0)
    assert key.startswith(BATCH_PREFIX)
    assert value is not None
    assert [lane.customer_status for lane in decode_batch(value)] == ["delivered"]
    assert freed == (partition, f"{MATCHED.id}/X".encode(), None)


def test_a_mostly_empty_record_has_its_last_lanes_written_again() -> None:
    keeper = LaneKeeper(keep_s=5, guard_keep_s=40)
    keeper.gain([0, 1, 2], StoredLanes())
    orders = [f"O-{i}" for i in range(30) if zlib.crc32(f"O-{i}".encode()) % 3 == 0][:6]
    for order in orders:
        delivered(keeper, order, "dispatched", now=1.0)
    [(_, first, _)] = keeper.snapshot(now=1.0)
    for order in orders[:4]:  # four of six move on: the first record holds two
        delivered(keeper, order, "delivered", now=2.0)
    [(_, second, _)] = keeper.snapshot(now=2.0)
    assert keeper.holders.records[first].live == {(MATCHED.id, o) for o in orders[4:]}
    [(_, third, value), freed] = keeper.snapshot(now=3.0)
    assert sorted(lane.order_id for lane in decode_batch(value or b"")) == sorted(orders[4:])
    assert freed == (0, first, None)
    assert set(keeper.holders.records) == {second, third}
