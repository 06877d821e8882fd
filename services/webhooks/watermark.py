"""Which offsets may be committed when records finish out of order (pure, thread-safe).

A record is finished when every delivery it caused is (delivered, dead-lettered, or dropped with its
endpoint). Deliveries to different endpoints finish in any order, so per partition the commit point is the
lowest record still unfinished (or one past the last record seen): a crash redelivers from there, and a record
is never committed while a delivery of it is outstanding (at-least-once).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

Partition = tuple[str, int]


class Ticket:
    """One consumed record's unfinished deliveries."""

    __slots__ = ("offset", "partition", "remaining")

    def __init__(self, partition: Partition, offset: int, remaining: int) -> None:
        self.partition, self.offset, self.remaining = partition, offset, remaining


class Watermarks:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # per partition the unfinished records, in offset order (consumed in order, removed anywhere)
        self._open: dict[Partition, dict[int, Ticket]] = {}
        self._next: dict[Partition, int] = {}  # one past the last record seen

    def add(self, partition: Partition, offset: int, deliveries: int) -> Ticket:
        """A consumed record and the number of deliveries it caused (0: finished at once)."""
        ticket = Ticket(partition, offset, deliveries)
        with self._lock:
            self._next[partition] = max(self._next.get(partition, 0), offset + 1)
            if deliveries > 0:
                self._open.setdefault(partition, {})[offset] = ticket
        return ticket

    def done(self, ticket: Ticket) -> None:
        """One delivery of the ticket's record finished. A ticket of a partition given up since is ignored."""
        with self._lock:
            ticket.remaining -= 1
            if ticket.remaining > 0:
                return
            records = self._open.get(ticket.partition)
            if records is not None and records.get(ticket.offset) is ticket:
                del records[ticket.offset]

    def committable(self) -> dict[Partition, int]:
        """Per partition, the offset to commit: the lowest unfinished record, else one past the last seen."""
        with self._lock:
            found = {}
            for partition, after_last in self._next.items():
                records = self._open.get(partition)
                found[partition] = min(records) if records else after_last
            return found

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Partitions this consumer no longer owns (revoked, lost) or starts over (assigned)."""
        with self._lock:
            for partition in partitions:
                self._open.pop(partition, None)
                self._next.pop(partition, None)

    def pending(self) -> int:
        """Records with deliveries outstanding, over every partition."""
        with self._lock:
            return sum(len(records) for records in self._open.values())
