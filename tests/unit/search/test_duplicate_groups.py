"""Verdicts read from either side, duplicate groups, and collapsing results to one per group."""

import json

from services.search.duplicates import collapse, groups, verdicts_of


def _row(a: str, b: str, kind: str, score: float = 0.95, at: int = 1) -> dict[str, object]:
    detail = {"start_s": 0.0, "end_s": 9.0, "other_start_s": 9.0, "other_end_s": 18.0, "segments": 3}
    return {"video_id": a, "other_id": b, "kind": kind, "score": score, "detail": json.dumps(detail), "checked_at": at}


def test_a_verdict_reads_from_the_other_side_with_kind_and_ranges_swapped() -> None:
    (seen,) = verdicts_of("src", [_row("comp", "src", "contains")])
    assert (seen["video_id"], seen["kind"]) == ("comp", "contained_in")
    assert (seen["start_s"], seen["end_s"], seen["other_start_s"], seen["other_end_s"]) == (9.0, 18.0, 0.0, 9.0)
    (mine,) = verdicts_of("comp", [_row("comp", "src", "contains")])
    assert (mine["video_id"], mine["kind"], mine["start_s"]) == ("src", "contains", 0.0)


def test_the_newest_verdict_of_a_pair_wins() -> None:
    rows = [_row("a", "b", "duplicate", at=1), _row("b", "a", "contains", at=2)]
    assert [v["kind"] for v in verdicts_of("a", rows)] == ["contained_in"]


def test_groups_join_through_duplicates_only_and_collapse_keeps_each_groups_best() -> None:
    rows = [_row("a", "b", "duplicate"), _row("c", "b", "duplicate"), _row("d", "a", "contains")]
    root = groups(rows)
    assert root["a"] == root["b"] == root["c"] and "d" not in root
    assert collapse(["c", "d", "a", "e", "b"], rows) == [0, 1, 3]
