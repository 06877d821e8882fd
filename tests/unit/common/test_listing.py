"""The listing's parts that need no Milvus: cursors and the upload-time bound (the store's use of them runs on
both backends in tests/store_contract.py)."""

from __future__ import annotations

import base64
import bisect
import random

import pytest

from services.common.vectors.listing import Cursor, lowest_bound, newest_first


def test_a_cursor_round_trips_and_compiles_to_literals() -> None:
    cursor = Cursor(1767225600, 'x" or tenant == "b')
    assert Cursor.decode(cursor.encode()) == cursor
    clause = cursor.clause()
    assert clause == (
        '(uploaded_at < 1767225600 or (uploaded_at == 1767225600 and video_id < "x\\" or tenant == \\"b"))'
    )


@pytest.mark.parametrize("raw", [b"", b"%%%", b"[1, 2]", b'["1", "x"]', b'[true, "x"]', b'[1, "\\u0007"]', b"[1]"])
def test_anything_but_a_cursor_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        Cursor.decode(base64.urlsafe_b64encode(raw).decode())
    with pytest.raises(ValueError):
        Cursor.decode(raw.decode() + "!")


def test_newest_first_breaks_ties_by_id() -> None:
    rows = [{"video_id": v, "uploaded_at": t} for v, t in (("a", 5), ("c", 5), ("b", 9), ("d", 1))]
    assert [r["video_id"] for r in newest_first(rows, 3)] == ["b", "c", "a"]


@pytest.mark.parametrize("seed", range(20))
def test_the_bound_keeps_the_newest_and_reads_a_bounded_window(seed: int) -> None:
    rng = random.Random(seed)
    now = 1_800_000_000
    # a burst in the last 90 s, a spread over 400 days, and 1/3 of the catalogue uploaded in one second
    ages = [rng.choice([rng.randrange(90), rng.randrange(3600 * 24 * 400), 3600 * 24 * 3000]) for _ in range(5000)]
    times = sorted(now - a for a in ages)
    counted: list[int] = []

    def count_since(at: int) -> int:
        counted.append(at)
        return len(times) - bisect.bisect_left(times, at)

    want, window = rng.choice([1, 24, 101]), 300
    bound = lowest_bound(count_since, want, now + 86_400, window)
    held = count_since(bound)
    assert held >= want  # the newest `want` are all at or above it
    ties = times.count(bound)
    assert held <= max(window, want - 1 + ties), (held, ties)  # and not many more
    assert len(counted) < 60
