"""Order lanes as pure state: who goes, who waits, what is replayed, what is written."""

from __future__ import annotations

import json

from consumers.lane_keeper import SWEEP_PER_SNAPSHOT, LaneKeeper, Lanes
from consumers.lane_log import BATCH_PREFIX, StoredLanes, decode_batch, encode_batch
from consumers.lanes import Lane, Pointer, Verdict
from disparo.lifecycle import Lifecycle
from disparo.schemas import DeliveryTarget, DispatchJob, now_utc
from tests.factories import attempt, event, rule

ORDERED = Lanes(ordered=True, supersede=False)
LATEST = Lanes(ordered=False, supersede=True)


def ordered_job(order_id: str) -> DispatchJob:
    matched = rule(ordering="per_order")
    first = DispatchJob.first(event(order_id=order_id), matched)
    return first.with_target(DeliveryTarget.of(matched))


def at(seq: int, dispatch_id: str, attempt: int = 1) -> Pointer:
    return Pointer(seq, "t.dispatch-jobs", 0, seq, dispatch_id, attempt)


def one_per_record(*lanes: Lane) -> StoredLanes:
    """Lanes read back from records of the earlier format: one lane each, keyed rule/order."""
    stored = StoredLanes()
    for lane in lanes:
        stored.apply(lane.partition, f"{lane.rule_id}/{lane.order_id}".encode(), lane.encode())
    return stored


def test_an_ordered_lane_lets_one_dispatch_go_and_queues_the_rest_by_event_order() -> None:
    lane = Lane(7, "X", 0)
    assert lane.admit("d1", 1, 10, True, False, at(10, "d1")) is Verdict.DELIVER
    lane.retried("d1", 2, ordered=True)
    assert lane.admit("d3", 1, 12, True, False, at(12, "d3")) is Verdict.WAIT
    assert lane.admit("d2", 1, 11, True, False, at(11, "d2")) is Verdict.WAIT
    assert lane.admit("d2", 1, 11, True, False, at(11, "d2")) is Verdict.SKIP  # replayed
    assert lane.admit("d1", 1, 10, True, False, at(10, "d1")) is Verdict.SKIP  # older copy
    assert lane.admit("d1", 2, 10, True, False, None) is Verdict.DELIVER
    following = lane.finished("d1", 10, delivered=False, now=1.0)  # a final failure frees it
    assert following == at(11, "d2")
    assert (lane.head, lane.start, lane.attempt) == ("d2", at(11, "d2"), 1)
    assert lane.finished("d2", 11, delivered=True, now=2.0) == at(12, "d3")
    assert lane.finished("d3", 12, delivered=True, now=3.0) is None
    assert not lane.busy()
    assert lane.idle_since == 3.0
    assert lane.admit("d2", 1, 11, True, False, at(11, "d2")) is Verdict.SKIP  # done already
    assert lane.admit("d9", 1, 5, True, False, at(5, "d9")) is Verdict.SKIP  # older than done


def test_a_superseding_lane_ends_older_events_once_a_newer_one_was_delivered() -> None:
    lane = Lane(7, "X", 0)
    assert lane.admit("d1", 1, 10, False, True, at(10, "d1")) is Verdict.DELIVER
    lane.retried("d1", 2, ordered=False)
    assert lane.retrying == ["d1"]
    assert lane.admit("d2", 1, 11, False, True, at(11, "d2")) is Verdict.DELIVER
    assert lane.finished("d2", 11, delivered=True, now=1.0) is None
    assert lane.busy()  # d1 still pending
    assert lane.admit("d1", 2, 10, False, True, None) is Verdict.SUPERSEDE
    lane.finished("d1", 10, delivered=False, now=2.0)
    assert not lane.busy()


def test_a_lane_reads_back_as_it_was_written() -> None:
    lane = Lane(7, "pedido/ção", 3, head="d1", attempt=2, start=at(1, "d1"))
    lane.waiting.append(at(2, "d2"))
    lane.done.append("d0")
    assert Lane.decode(lane.encode()) == lane
    assert Lane.of(lane.as_dict()) == lane


def test_a_batch_reads_back_its_lanes_and_a_batch_of_the_earlier_format_too() -> None:
    busy = Lane(7, "pedido/ção", 3, head="d1", attempt=2, start=at(1, "d1"), done=["d0"])
    busy.waiting.extend([at(2, "d2"), at(3, "d3", attempt=4)])
    busy.retrying.append("d9")
    idle = Lane(7, "B-1", 3, customer_status="delivered", done=["d5"], idle_since=12.5)
    raw = encode_batch([busy, idle])
    assert decode_batch(raw) == [busy, idle]
    assert raw.count(b"customer_status") == 1  # field names once, then a row per lane
    earlier = json.dumps([busy.as_dict(), idle.as_dict()]).encode()
    assert decode_batch(earlier) == [busy, idle]


def test_the_keeper_writes_changed_lanes_only_and_forgets_idle_ones_after_keep_s() -> None:
    keeper = LaneKeeper(keep_s=60)
    keeper.gain([0], StoredLanes())
    ok = ordered_job("X")
    assert keeper.admit(ok, ORDERED, 0, at(1, ok.dispatch_id)) is Verdict.DELIVER
    keeper.ended((ok.target.rule_id, "X"), ok.dispatch_id, 1, delivered=True, now=1.0)
    assert keeper.snapshot(now=2.0) == []  # delivered at once: nothing to remember
    assert keeper.lanes == {}

    first, second = ordered_job("Y"), ordered_job("Y")
    keeper.admit(first, ORDERED, 0, at(1, first.dispatch_id))
    keeper.lanes[(ok.target.rule_id, "Y")].retried(first.dispatch_id, 2, ordered=True)
    keeper.dirty.add((ok.target.rule_id, "Y"))
    assert keeper.admit(second, ORDERED, 0, at(2, second.dispatch_id)) is Verdict.WAIT
    [(partition, key, value)] = keeper.snapshot(now=3.0)
    assert partition == 0
    assert key.startswith(BATCH_PREFIX)
    assert value is not None
    [lane] = decode_batch(value)
    assert [p.dispatch_id for p in lane.waiting] == [second.dispatch_id]
    key_y = (ok.target.rule_id, "Y")
    assert keeper.ended(key_y, first.dispatch_id, 1, False, now=4.0) == at(2, second.dispatch_id)
    assert keeper.ended(key_y, second.dispatch_id, 2, True, now=5.0) is None
    # The idle lane, kept for replays, in a new batch; the first batch holds nothing now.
    [(_, idle, value), tombstone] = keeper.snapshot(now=6.0)
    assert value is not None
    assert decode_batch(value)[0].idle_since == 5.0
    assert tombstone == (0, key, None)
    assert keeper.snapshot(now=70.0) == [(0, idle, None)]  # then a tombstone


def test_a_lost_partition_forgets_its_lanes_and_a_gained_one_restarts_released_heads() -> None:
    keeper = LaneKeeper(keep_s=60)
    waiting_head = Lane(7, "X", 2, head="d2", attempt=1, start=at(5, "d2"))
    assert keeper.gain([2], one_per_record(waiting_head)) == [at(5, "d2")]
    assert keeper.holders.stored((7, "X"))
    keeper.lose([2])
    assert keeper.lanes == {}
    assert keeper.holders.of == {}
    assert keeper.holders.records == {}
    assert keeper.partitions == set()
    released = ordered_job("X")
    assert keeper.admit(released, ORDERED, 2, None) is Verdict.SKIP  # not ours any more


def guarded_job(order_id: str, status: str) -> DispatchJob:
    matched = rule(status_guard="forward_only")
    first = DispatchJob.first(event(order_id=order_id, order_status=status), matched)
    return first.with_target(DeliveryTarget.of(matched))


def test_a_guarded_lane_remembers_the_status_delivered_and_keeps_it_for_guard_keep_s() -> None:
    lifecycle = Lifecycle(statuses=("dispatched", "in_transit", "delivered"))
    guarded = Lanes(ordered=False, supersede=False, guard=lifecycle)
    keeper = LaneKeeper(keep_s=60, guard_keep_s=600)
    keeper.gain([0], StoredLanes())
    delivered = guarded_job("G", "delivered")
    assert keeper.admit(delivered, guarded, 0, at(1, delivered.dispatch_id)) is Verdict.DELIVER
    ok = attempt("G", now_utc(), "success", final=True)
    assert keeper.settled(delivered, guarded, ok, 0, now=1.0) is None
    late = guarded_job("G", "in_transit")
    assert keeper.customer_status(late) == "delivered"
    [(partition, key, value)] = keeper.snapshot(now=2.0)  # written: it survives a crash
    assert value is not None
    assert decode_batch(value)[0].customer_status == "delivered"
    assert keeper.snapshot(now=100.0) == []  # past keep_s, still remembered
    assert keeper.customer_status(late) == "delivered"
    assert keeper.snapshot(now=700.0) == [(partition, key, None)]  # then a tombstone
    assert keeper.customer_status(late) is None


def test_a_failed_dispatch_leaves_what_the_customer_holds_unchanged() -> None:
    lifecycle = Lifecycle(statuses=("dispatched", "delivered"))
    guarded = Lanes(ordered=False, supersede=False, guard=lifecycle)
    keeper = LaneKeeper(keep_s=60)
    keeper.gain([0], StoredLanes())
    failed = guarded_job("F", "delivered")
    keeper.admit(failed, guarded, 0, at(1, failed.dispatch_id))
    keeper.settled(failed, guarded, attempt("F", now_utc(), "failure", final=True), 0, now=1.0)
    assert keeper.customer_status(failed) is None
    assert keeper.snapshot(now=2.0) == []


def test_idle_lanes_are_swept_a_slice_per_snapshot_and_all_of_them_in_the_end() -> None:
    keeper = LaneKeeper(keep_s=60)
    idle = [Lane(7, f"O-{i}", 0, idle_since=1.0) for i in range(5000)]
    keeper.gain([0], one_per_record(*idle))  # the earlier format: a record per lane
    first = keeper.snapshot(now=100.0)
    assert len(first) == SWEEP_PER_SNAPSHOT  # tombstones: each record held one lane
    assert all(value is None for _, _, value in first)
    assert len(keeper.snapshot(now=100.0)) == SWEEP_PER_SNAPSHOT
    assert len(keeper.snapshot(now=100.0)) == 5000 - 2 * SWEEP_PER_SNAPSHOT
    assert keeper.lanes == {}
    assert keeper.snapshot(now=100.0) == []
