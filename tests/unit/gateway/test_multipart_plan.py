"""Planning a direct upload's parts: S3's bounds (5 MiB parts, 10,000 of them at most) and the gateway's limit."""

from __future__ import annotations

import itertools

import pytest

from services.common.errors import PermanentError, TooLarge
from services.gateway.multipart import MAX_PARTS, MIB, MIN_PART_BYTES, plan, ranges

PART = 8 * MIB
LIMIT = 50 * 1024**3


def _spans(size: int, part_bytes: int = PART) -> list[tuple[int, int]]:
    planned = plan(size, part_bytes, 5 * 1024**4)
    return [planned.span(n) for n in range(1, planned.part_count + 1)]


def test_a_size_that_is_a_multiple_of_the_part_size_ends_with_a_whole_part() -> None:
    planned = plan(3 * PART, PART, LIMIT)
    assert (planned.part_size, planned.part_count) == (PART, 3)
    assert _spans(3 * PART) == [(0, PART), (PART, PART), (2 * PART, PART)]
    assert _spans(3 * PART + 1)[-1] == (3 * PART, 1)  # one byte more: a fourth part of one byte


def test_one_byte_is_one_part_of_one_byte() -> None:
    planned = plan(1, PART, LIMIT)
    assert (planned.part_size, planned.part_count, planned.span(1)) == (PART, 1, (0, 1))


def test_parts_grow_by_whole_mebibytes_where_10000_would_not_hold_the_file() -> None:
    at_most = plan(MAX_PARTS * PART, PART, LIMIT * 10)
    assert (at_most.part_size, at_most.part_count) == (PART, MAX_PARTS)  # exactly 10,000: no bump
    bumped = plan(MAX_PARTS * PART + 1, PART, LIMIT * 10)
    assert bumped.part_size == 9 * MIB and bumped.part_count <= MAX_PARTS
    largest = plan(5 * 1024**4, PART, 5 * 1024**4)  # S3's largest object
    assert largest.part_size % MIB == 0 and largest.part_count <= MAX_PARTS
    assert (largest.part_count - 1) * largest.part_size < largest.size <= largest.part_count * largest.part_size


def test_the_limit_is_inclusive_and_one_byte_over_it_is_too_large() -> None:
    assert plan(LIMIT, PART, LIMIT).part_count == LIMIT // PART
    with pytest.raises(TooLarge):
        plan(LIMIT + 1, PART, LIMIT)


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(PermanentError) as refused:
        plan(0, PART, LIMIT)
    assert refused.value.reason == "empty_file"


def test_parts_are_never_below_s3s_minimum() -> None:
    assert plan(100 * MIB, MIB, LIMIT).part_size == MIN_PART_BYTES


@pytest.mark.parametrize("size", [1, MIN_PART_BYTES - 1, PART - 1, PART, PART + 1, 1234 * PART + 567, 10**11 + 3])
def test_the_parts_tile_the_file(size: int) -> None:
    spans = _spans(size)
    assert spans[0][0] == 0 and sum(length for _, length in spans) == size
    assert all(offset + length == following for (offset, length), (following, _) in itertools.pairwise(spans))
    assert len({length for _, length in spans[:-1]}) <= 1 and 0 < spans[-1][1] <= spans[0][1]
    assert len(spans) <= MAX_PARTS


def test_part_numbers_read_as_ranges() -> None:
    assert ranges([1, 2, 3, 7, 9, 10]) == "1-3, 7, 9-10"
    assert ranges([]) == ""
