"""Where the curation job's independent pieces run: in this process, or as Ray tasks.

The job hands an executor a function and a stream of work items (a chunk of vectors to assign, a group of
clusters to deduplicate) and takes the results back in the items' order, so it checkpoints exactly as it does
in one process and both give the same manifest. Every task runs its BLAS on one thread (`one_blas_thread`):
a matrix product's last bits depend on how many threads share it, and a similarity at the threshold or two
centroids nearly as close would otherwise decide differently on a 1-CPU Ray worker than in a 2-thread process.
Parallelism comes from running tasks side by side instead: threads here (NumPy and faiss release the GIL in
their kernels; each thread limits its own OpenMP, `one_omp_thread`), Ray's workers there. Ray is local by
default (a Ray started on loopback for this run, on this machine's cores) or a cluster's address
(`ray://head:10001`, or `auto` inside a Ray job); the items travel through Ray's object store, at most `window`
of them in flight, so the driver's memory is bounded by that window and not by the catalogue.
"""

from __future__ import annotations

import functools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

A = TypeVar("A")
R = TypeVar("R")


class Executor(Protocol):
    def imap(self, fn: Callable[[A], R], items: Iterable[A]) -> Iterator[R]:
        """fn over items, results in the items' order."""
        ...

    def close(self) -> None: ...


def one_blas_thread() -> Any:
    """A context in which BLAS (NumPy's and faiss's) uses one thread: a task's results then do not depend on
    where it runs."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def one_omp_thread() -> None:
    """This thread's OpenMP regions on one thread, for good. OpenMP's thread count is per thread, and faiss's BLAS
    is OpenMP's (the wheel's OpenBLAS): a limit set in the driver's thread never reaches a pool's threads, whose
    matrix products then split over two threads and round differently (a 10M run put 2 rows in other clusters
    than Ray did, each nearly as close to two centroids). Each worker thread, and each Ray task, sets it itself."""
    import faiss

    faiss.omp_set_num_threads(1)


class InProcess:
    """This process: `clipstream curate` without `--ray`. Up to `workers` tasks at once on threads (default: the
    cores), at most `window` in flight, results in order."""

    def __init__(self, workers: int = 0, window: int = 0) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.window = window or 2 * self.workers
        self._pool: ThreadPoolExecutor | None = None

    def imap(self, fn: Callable[[A], R], items: Iterable[A]) -> Iterator[R]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="curation", initializer=one_omp_thread)
        pending: deque[Future[R]] = deque()
        with one_blas_thread():  # process-wide: set once around all the threads' tasks, not per task
            for item in items:
                pending.append(self._pool.submit(fn, item))
                if len(pending) >= self.window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


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
        remote = self._remote.setdefault(fn, self._ray.remote(num_cpus=1)(_on_one_blas_thread(fn)))
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


def _on_one_blas_thread(fn: Callable[[A], R]) -> Callable[[A], R]:
    """fn as a Ray task runs it: BLAS on one thread (a worker runs one task at a time)."""

    @functools.wraps(fn)
    def task(item: A) -> R:
        one_omp_thread()  # Ray sets OMP_NUM_THREADS=1 in its workers; a cluster's may differ
        with one_blas_thread():
            return fn(item)

    return task


def executor(ray: bool, address: str | None = None) -> Executor:
    return RayTasks(address) if ray or address else InProcess()
