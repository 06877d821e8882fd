"""Why a video could not be decoded; `reason` becomes the dead-letter record's machine-readable class."""

from __future__ import annotations


class DecodeError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
