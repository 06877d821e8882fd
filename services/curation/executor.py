"""Where the curation job's independent pieces run: in this process, or as Ray tasks.

The job hands an executor a function and a stream of work items (a chunk of vectors to assign, a group of
clusters to deduplicate) and takes the results back in the items' order, so it checkpoints exactly as it does
in one process and both give the same manifest. Ray is local by default (a Ray started on loopback for this
run, on this machine's cores) or a cluster's address (`ray://head:10001`, or `auto` inside a Ray job); the
items travel through Ray's object store, at most `window` of them in flight, so the driver's memory is bounded
by that window and not by the catalogue.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

A = TypeVar("A")
R = TypeVar("R")


class Executor(Protocol):
    def imap(self, fn: Callable[[A], R], items: Iterable[A]) -> Iterator[R]:
        """fn over items, results in the items' order."""
        ...

    def close(self) -> None: ...


class InProcess:
    """One process, one item at a time: `clipstream curate` without `--ray`."""

    def imap(self, fn: Callable[[A], R], items: Iterable[A]) -> Iterator[R]:
        return map(fn, items)

    def close(self) -> None:
        pass


class RayTasks:
    """Each item one Ray task (1 CPU), results taken in order with at most `window` tasks in flight."""

    def __init__(self, address: str | None = None, window: int = 0, num_cpus: int | None = None) -> None:
        import ray  # the `batch` extra: only this executor needs it

        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:  # a local Ray for this run, reachable on loopback only
                ray.init(
                    num_cpus=num_cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                    _node_ip_address="127.0.0.1",
                )
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.window = window or 2 * cpus
        self._remote: dict[Callable[..., Any], Any] = {}

    def imap(self, fn: Callable[[A], R], items: Iterable[A]) -> Iterator[R]:
        remote = self._remote.setdefault(fn, self._ray.remote(num_cpus=1)(fn))
        pending: deque[Any] = deque()
        for item in items:
            pending.append(remote.remote(item))
            if len(pending) >= self.window:
                yield self._ray.get(pending.popleft())
        while pending:
            yield self._ray.get(pending.popleft())

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def executor(ray: bool, address: str | None = None) -> Executor:
    return RayTasks(address) if ray or address else InProcess()
