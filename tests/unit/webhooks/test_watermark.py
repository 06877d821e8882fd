"""The commit point of each partition is the lowest record with a delivery outstanding."""

from services.webhooks.watermark import Watermarks

P = ("videos.status", 0)
Q = ("videos.qc", 3)


def test_commits_only_below_the_lowest_unfinished_record() -> None:
    marks = Watermarks()
    a = marks.add(P, 10, 2)  # two endpoints
    b = marks.add(P, 11, 1)
    marks.add(P, 12, 0)  # no endpoint: finished at once
    assert marks.committable() == {P: 10}
    marks.done(b)  # a later record finishing first commits nothing
    assert marks.committable() == {P: 10}
    marks.done(a)
    assert marks.committable() == {P: 10}  # one of its two deliveries is still out
    marks.done(a)
    assert marks.committable() == {P: 13}
    assert marks.pending() == 0


def test_the_middle_record_holds_the_ones_after_it() -> None:
    marks = Watermarks()
    first, middle, last = (marks.add(P, o, 1) for o in (5, 6, 7))
    marks.done(first)
    marks.done(last)
    assert marks.committable() == {P: 6}
    marks.done(middle)
    assert marks.committable() == {P: 8}


def test_partitions_are_independent() -> None:
    marks = Watermarks()
    stuck = marks.add(P, 0, 1)
    marks.add(Q, 40, 0)
    assert marks.committable() == {P: 0, Q: 41}
    marks.done(stuck)
    assert marks.committable() == {P: 1, Q: 41}


def test_a_forgotten_partition_ignores_its_old_tickets() -> None:
    marks = Watermarks()
    old = marks.add(P, 3, 1)
    marks.forget([P])  # revoked, then assigned again: consumed afresh from the committed offset
    assert marks.committable() == {}
    new = marks.add(P, 3, 1)
    marks.done(old)  # the delivery started before the revocation finishes late
    assert marks.committable() == {P: 3} and marks.pending() == 1
    marks.done(new)
    assert marks.committable() == {P: 4}
