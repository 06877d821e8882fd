"""The newest videos of a scope, newest first, a page at a time, on every Milvus backend.

Milvus queries have no ORDER BY that every backend honours (Milvus Lite 3.2 accepts `order_by_fields` and
ignores it), so the order is made here: a lower bound on `uploaded_at` (an indexed field) is found with a few
`count(*)` queries, so that only the rows above it are read, never a whole catalogue. Pages are keyset pages:
the cursor is the last row's (uploaded_at, video_id), which stays right while videos are being added (an
offset would shift).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from services.common.filters import number_literal, string_literal

FIRST_SPAN_S = 3600
WINDOW_ROWS = 10_000  # at most this many (video_id, uploaded_at) pairs are read to make one page


@dataclass(frozen=True, order=True)
class Cursor:
    """Where the previous page ended: the next page holds what sorts after it (older, then lower id)."""

    uploaded_at: int
    video_id: str

    def encode(self) -> str:
        raw = json.dumps([self.uploaded_at, self.video_id], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """A cursor this module encoded; anything else is a ValueError (a 400 at the API)."""
        try:
            uploaded_at, video_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError) as exc:
            raise ValueError("not a cursor of this listing") from exc
        if not isinstance(uploaded_at, int) or isinstance(uploaded_at, bool) or not isinstance(video_id, str):
            raise ValueError("not a cursor of this listing")
        string_literal(video_id)  # control characters cannot be compared against
        return cls(uploaded_at, video_id)

    def clause(self) -> str:
        """Rows after this cursor in the listing's order, as a Milvus expression (values as literals)."""
        at = number_literal(self.uploaded_at)
        return f"(uploaded_at < {at} or (uploaded_at == {at} and video_id < {string_literal(self.video_id)}))"

    @classmethod
    def of(cls, row: dict[str, Any]) -> Cursor:
        return cls(int(row["uploaded_at"]), str(row["video_id"]))


def newest_first(rows: Sequence[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The listing's order: upload time, newest first; the id breaks ties, so pages never overlap."""
    return sorted(rows, key=Cursor.of, reverse=True)[:limit]


def lowest_bound(count_since: Callable[[int], int], want: int, now: int, window_rows: int = WINDOW_ROWS) -> int:
    """An `uploaded_at` bound with at least `want` rows at or above it (the caller knows the scope holds that
    many) and, unless more than `window_rows` share one second, at most `window_rows`.

    Windows back from `now` grow 16-fold until one holds `want` rows (a handful of counts whatever the
    catalogue's age); a window holding too many is then halved. `now` is a day ahead of the clock, for
    upload times a little in the future."""
    upper, span = now, FIRST_SPAN_S
    lower = upper - span
    found = count_since(lower)
    while found < want:
        upper, span = lower, span * 16
        lower = upper - span
        found = count_since(lower)
    while found > window_rows and upper - lower > 1:
        middle = (lower + upper) // 2
        there = count_since(middle)
        if there >= want:
            lower, found = middle, there
        else:
            upper = middle
    return lower
