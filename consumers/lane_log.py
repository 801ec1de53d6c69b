"""How order lanes are stored in the compacted order-lanes topic: in batch records.

No I/O. A commit writes each job partition's changed lanes as one record (a few for very
many lanes) under a key of its own, instead of one record per lane: kafka-python and the
broker charge per record, and a status-guarded rule changes a lane at every delivery.
A batch stays in the topic while it holds the latest state of at least one lane; once none
is left (each was written again later, or expired) it gets a tombstone and compaction
removes it. A batch whose lanes mostly moved on has its last few written again, so the
topic holds at most about twice the live lanes. Records of the earlier format (one lane,
keyed `rule/order`) read back the same way: a holder of one lane.
"""

from __future__ import annotations

import json
import operator
import uuid
from dataclasses import dataclass, field, fields
from typing import Any

from consumers.lanes import Lane, LaneKey, Pointer

BATCH_PREFIX = b"lanes/"
Emptied = tuple[int, bytes]  # a record that holds no lane any more: (partition, key)
MAX_LANES_PER_RECORD = 1000  # ~250 KB a record, far under the topics' record limit


@dataclass
class Holder:
    """One stored record: its partition, how many lanes it was written with, which it still
    holds the latest state of."""

    partition: int
    written: int
    live: set[LaneKey] = field(default_factory=set)

    def sparse(self) -> bool:
        """Most of its lanes moved on: the rest are worth writing again to free it."""
        return 0 < 2 * len(self.live) < self.written


class Holders:
    """Which record holds each stored lane's latest state, and what each record still holds."""

    def __init__(self) -> None:
        self.of: dict[LaneKey, bytes] = {}
        self.records: dict[bytes, Holder] = {}
        self.thinned: set[bytes] = set()  # records that lost lanes since `sparse` last ran

    def stored(self, key: LaneKey) -> bool:
        return key in self.of

    def written(self, record: bytes, partition: int, keys: list[LaneKey]) -> list[Emptied]:
        """`keys` now live in `record`; the records that no longer hold any lane."""
        self.records[record] = Holder(partition, len(keys), set(keys))
        emptied: list[Emptied] = []
        for key in keys:
            previous = self.of.get(key)
            self.of[key] = record
            if previous is not None and previous != record:
                emptied.extend(self._release(previous, key))
        return emptied

    def dropped(self, key: LaneKey) -> list[Emptied]:
        """The lane is gone (expired): its record, if that now holds no lane."""
        record = self.of.pop(key, None)
        return [] if record is None else self._release(record, key)

    def sparse(self) -> list[LaneKey]:
        """The live lanes of the records that lost lanes lately and hold few now."""
        keys: list[LaneKey] = []
        thinned, self.thinned = self.thinned, set()
        for record in thinned:
            holder = self.records.get(record)
            if holder is not None and holder.sparse():
                keys.extend(holder.live)
        return keys

    def removed(self, record: bytes) -> set[LaneKey]:
        """The record is gone (a tombstone read back): the lanes it still held."""
        holder = self.records.pop(record, None)
        if holder is None:
            return set()
        for key in holder.live:
            self.of.pop(key, None)
        return holder.live

    def forget(self, partitions: set[int]) -> None:
        """Partitions now owned elsewhere: their records are the new owner's to track."""
        gone = [r for r, holder in self.records.items() if holder.partition in partitions]
        for record in gone:
            self.removed(record)

    def merge(self, other: Holders) -> None:
        """Take over the records of partitions just gained (checked for sparseness next)."""
        self.of.update(other.of)
        self.records.update(other.records)
        self.thinned.update(other.records)

    def _release(self, record: bytes, key: LaneKey) -> list[Emptied]:
        holder = self.records.get(record)
        if holder is None:
            return []
        holder.live.discard(key)
        if holder.live:
            self.thinned.add(record)
            return []
        del self.records[record]
        self.thinned.discard(record)
        return [(holder.partition, record)]


@dataclass
class StoredLanes:
    """Lanes read back from the topic, with the records holding them."""

    lanes: dict[LaneKey, Lane] = field(default_factory=dict)
    holders: Holders = field(default_factory=Holders)

    def apply(self, partition: int, key: bytes, value: bytes | None) -> None:
        """One record, in the topic's order: a batch, a lane of the earlier format, or a
        tombstone (the lanes its record still held are gone)."""
        if value is None:
            for lane_key in self.holders.removed(key):
                self.lanes.pop(lane_key, None)
            return
        lanes = decode_batch(value) if key.startswith(BATCH_PREFIX) else [Lane.decode(value)]
        for lane in lanes:
            self.lanes[lane.key] = lane
        self.holders.written(key, partition, [lane.key for lane in lanes])


def batch_key() -> bytes:
    """A new batch record's key: unique, so no later batch replaces it by compaction."""
    return BATCH_PREFIX + uuid.uuid4().hex.encode()


# A batch names its fields once and carries each lane as a row: a third of the bytes of a
# list of objects, and a fifth of the time to encode (a guarded rule writes a lane a delivery).
_LANE_FIELDS = tuple(f.name for f in fields(Lane))
_POINTER_FIELDS = Pointer._fields
_lane_row = operator.attrgetter(*_LANE_FIELDS)
_pointer_row = operator.attrgetter(*_POINTER_FIELDS)
_START, _WAITING = _LANE_FIELDS.index("start"), _LANE_FIELDS.index("waiting")


def encode_batch(lanes: list[Lane]) -> bytes:
    """A batch record's value: the field names, then one row per lane."""
    rows = [_row(lane) for lane in lanes]
    batch = {"lane": _LANE_FIELDS, "pointer": _POINTER_FIELDS, "rows": rows}
    return json.dumps(batch, separators=(",", ":")).encode()


def decode_batch(raw: bytes) -> list[Lane]:
    """The lanes of a batch record (of this format, or a list of lane objects before it)."""
    data = json.loads(raw)
    if isinstance(data, list):
        return [Lane.of(item) for item in data]
    lane_fields, pointer_fields = data["lane"], data["pointer"]
    lanes = []
    for row in data["rows"]:
        values = dict(zip(lane_fields, row, strict=True))
        start = values.get("start")
        values["start"] = None if start is None else Pointer(*_named(pointer_fields, start))
        values["waiting"] = [Pointer(*_named(pointer_fields, p)) for p in values.get("waiting", ())]
        lanes.append(Lane(**values))
    return lanes


def _row(lane: Lane) -> Any:
    row: Any = _lane_row(lane)
    if lane.start is None and not lane.waiting:
        return row
    row = list(row)
    row[_START] = None if lane.start is None else _pointer_row(lane.start)
    row[_WAITING] = [_pointer_row(p) for p in lane.waiting]
    return row


def _named(names: list[str], row: list[Any]) -> tuple[Any, ...]:
    """A pointer row's values in this version's field order."""
    values = dict(zip(names, row, strict=True))
    return tuple(values[name] for name in _POINTER_FIELDS)


def chunks(lanes: list[Lane]) -> list[list[Lane]]:
    """A partition's changed lanes, as the records that carry them."""
    step = MAX_LANES_PER_RECORD
    return [lanes[i : i + step] for i in range(0, len(lanes), step)]
