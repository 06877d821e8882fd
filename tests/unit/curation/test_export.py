"""The export's shards cover every upload time exactly once, at their boundaries too."""

from __future__ import annotations

import re

import pytest

from services.curation.export import range_clauses


def _holds(clause: str, t: int) -> bool:
    checks = re.findall(r"uploaded_at (>=|<) (\d+)", clause)
    assert " and ".join(f"uploaded_at {op} {v}" for op, v in checks) == clause  # nothing else in a clause
    return all(t >= int(v) if op == ">=" else t < int(v) for op, v in checks)


@pytest.mark.parametrize("bounds", [[], [10], [10, 11], [10, 20, 30]])
def test_every_upload_time_falls_in_exactly_one_shard(bounds: list[int]) -> None:
    clauses = range_clauses(bounds)
    assert len(clauses) == len(bounds) + 1
    for t in range(0, 40):
        assert sum(_holds(c, t) for c in clauses) == 1, t  # at a bound: the shard above it, only
