"""The manifest's twin lookup (`RowIds`): the ids of any rows, in order, nulls where asked, from a memory-mapped
file of record batches of any sizes (the export's batches break at row groups)."""

from pathlib import Path

import numpy as np
import pyarrow as pa

from services.curation.job import RowIds


def test_rows_are_taken_across_batches_in_order_with_nulls(tmp_path: Path) -> None:
    schema = pa.schema([("video_id", pa.string()), ("segment_index", pa.int64())])
    sizes, start = [5, 1, 7, 3], 0
    with pa.OSFile(str(tmp_path / "ids.arrow"), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for size in sizes:
            batch = range(start, start + size)
            writer.write_batch(pa.record_batch([[f"v{i}" for i in batch], list(batch)], schema=schema))
            start += size
    ids = RowIds(tmp_path / "ids.arrow")
    rows = np.array([15, 0, 5, 4, 6, 12, 15, -1, 11, 5], dtype=np.int64)
    null = rows < 0
    taken = ids.take(rows, null)
    assert taken.column("video_id").to_pylist() == [f"v{r}" if r >= 0 else None for r in rows]
    assert taken.column("segment_index").to_pylist() == [int(r) if r >= 0 else None for r in rows]
    nothing = ids.take(np.full(3, -1), np.ones(3, dtype=bool))
    assert nothing.num_rows == 3 and nothing.column("video_id").null_count == 3
