"""A consumed Kafka message for offline tests of the stage loop (a real Message cannot be built offline)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Record:
    """A consumed message: the accessors the stage loop reads (a real Message cannot be built offline)."""

    o: int
    value_: bytes | None
    p: int = 0
    t: str = "in"

    def topic(self) -> str:
        return self.t

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o

    def key(self) -> bytes:
        return f"k{self.o}".encode()

    def value(self) -> bytes | None:
        return self.value_

    def headers(self) -> list[tuple[str, bytes]]:
        return []

    def error(self) -> None:
        return None
