"""Every curation task computes on one thread wherever it runs, so one process and Ray make the same decisions at a
limit (a row between two centroids, a pair at the threshold): OpenMP's limit is per thread, so the pool's threads
must each set their own (faiss's BLAS is OpenMP's; one set in the driver's thread never reached them)."""

from concurrent.futures import ThreadPoolExecutor

import faiss
import pytest

from services.curation.executor import InProcess


def test_every_in_process_task_runs_openmp_on_one_thread() -> None:
    with ThreadPoolExecutor(1) as plain:  # what a new thread gets by default (OMP_NUM_THREADS, else the cores)
        default = plain.submit(faiss.omp_get_max_threads).result()
    if default < 2:
        pytest.skip("a new thread has one OpenMP thread here anyway: the limit would not show")
    executor = InProcess(workers=2)
    try:
        seen = list(executor.imap(lambda _: faiss.omp_get_max_threads(), range(8)))
    finally:
        executor.close()
    assert seen == [1] * 8
