from consumers.offsets import OffsetTracker


def test_commit_point_waits_for_the_first_unfinished_offset() -> None:
    t = OffsetTracker()
    for offset in (10, 11, 12, 13):
        t.take("p0", offset)
    t.finish("p0", 11)
    t.finish("p0", 13)
    assert t.committable() == {}
    t.finish("p0", 10)
    assert t.committable() == {"p0": 12}
    assert t.in_flight == 2
    t.finish("p0", 12)
    assert t.committable() == {"p0": 14}
    assert t.committable() == {}
    assert t.in_flight == 0


def test_partitions_advance_independently() -> None:
    t = OffsetTracker()
    t.take("a", 0)
    t.take("b", 5)
    t.take("b", 6)
    t.finish("b", 5)
    assert t.committable() == {"b": 6}
    t.finish("a", 0)
    assert t.committable() == {"a": 1}


def test_forgotten_partitions_are_not_committed() -> None:
    t = OffsetTracker()
    t.take("a", 0)
    t.forget(["a"])
    t.finish("a", 0)
    assert t.committable() == {}
    assert t.in_flight == 0


def test_a_partition_read_again_after_a_rebalance_starts_over() -> None:
    t = OffsetTracker()
    t.take("a", 5)
    t.take("a", 6)
    t.take("a", 5)  # handed back and read again from the committed offset 5
    t.finish("a", 5)
    assert t.committable() == {"a": 6}
