"""Every curation task computes on one thread wherever it runs, so one process and Ray make the same decisions at a
limit (a row between two centroids, a pair at the threshold): OpenMP's limit is per thread, so the pool's threads
must each set their own (faiss's BLAS is OpenMP's; one set in the driver's thread never reached them)."""

import os

import faiss
import pytest

from services.curation.executor import InProcess


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: every thread has one OpenMP thread anyway")
def test_every_in_process_task_runs_openmp_on_one_thread() -> None:
    executor = InProcess(workers=2)
    try:
        seen = list(executor.imap(lambda _: faiss.omp_get_max_threads(), range(8)))
    finally:
        executor.close()
    assert seen == [1] * 8
    assert faiss.omp_get_max_threads() > 1, "the driver's own thread (k-means training) keeps its cores"
