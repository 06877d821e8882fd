"""What a Milvus cluster must hold for a catalogue: bytes per segment row measured on real footage, and the query
nodes, segments and partitions that follow at 1M to 1B segments. The chart's `milvus` values cite this output.

Run: `.venv/bin/python -m bench.milvus_sizing [--dims 512 768 1024] [--hnsw-m 16]`. Decodes the shared clips with
the decoder's own settings, builds each segment's row as the indexer writes it (`segment_row`: scalars, the
middle keyframe's thumbnail, the vector) and measures its bytes; segments per hour of video come from the same
clips. Memory per row on a query node: the row's scalars and thumbnail, the vector (float32), the HNSW graph
(level 0 holds 2*M neighbour ids of 4 bytes; upper levels add about 1/M of that) and the scalar indexes
(INVERTED on the filtered fields; about the size of those fields once more). Baseline for the ratios: the
vector alone (what a naive estimate counts). Query nodes: 64 GiB each, filled to 70 % (Milvus keeps headroom
for loading and compaction; its sizing tool assumes the same order). Segments: Milvus seals a segment at
`dataCoord.segment.maxSize` (1,024 MB by default) times its seal proportion; the table shows how many sealed
segments each size gives (every search visits every segment of the partitions it reads).
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import UTC, datetime

import numpy as np

from bench.common import SHARED_VIDEOS, recorded
from services.common.messages import ModelRef, SegmentEmbedding, VideoInfo
from services.common.vectors import segment_row
from services.common.vectors.layout import SCALAR_INDEXED
from services.media.decode import decode_video
from services.media.images import thumbnail
from services.media.settings import MediaSettings

GIB = 1024**3
NODE_GIB, FILL = 64, 0.70
SIZES = (1_000_000, 100_000_000, 1_000_000_000)


def field_bytes(value: object) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bool | int | float):
        return 8
    if isinstance(value, list):
        return 4 * len(value)
    return len(json.dumps(value).encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dims", type=int, nargs="+", default=[512, 768, 1024])
    parser.add_argument("--hnsw-m", type=int, default=16)
    args = parser.parse_args()
    media = MediaSettings()
    paths = sorted(p for p in SHARED_VIDEOS.iterdir() if p.is_file() and p.suffix != ".md")
    scalars: list[int] = []
    thumbs: list[int] = []
    indexed: list[int] = []
    seconds = 0.0
    model = ModelRef(name="sizing", version="0" * 12, dim=1)
    for path in paths:
        decoded = decode_video(path, media.decode_options())
        seconds += decoded.probe.duration_s
        info = VideoInfo(
            uri=f"s3://uploads/catalogue/{path.name}",
            creator="creator-0001",
            tenant="tenant-0001",
            title=path.stem.replace("_", " "),
            uploaded_at=datetime.now(UTC),
            tags=["tag-a", "tag-b"],
        )
        for seg in decoded.segments:
            middle = seg.keyframes[len(seg.keyframes) // 2]
            row = segment_row(
                SegmentEmbedding(
                    event_id="e" * 32,
                    video_id=f"video-{path.stem}"[:64],
                    segment_index=seg.index,
                    segment_count=len(decoded.segments),
                    start_s=seg.start_s,
                    end_s=seg.end_s,
                    keyframe_times=[k.t for k in seg.keyframes],
                    vector=[0.0],
                    model=model,
                    video=info,
                    thumbnail=thumbnail(middle.jpeg),
                )
            )
            thumbs.append(field_bytes(row.pop("thumb")))
            row.pop("vector")
            scalars.append(sum(field_bytes(v) for v in row.values()))
            indexed.append(sum(field_bytes(row[f]) for f in SCALAR_INDEXED if f in row))
    per_hour = len(scalars) / (seconds / 3600)
    scalar, thumb, index = float(np.mean(scalars)), float(np.mean(thumbs)), float(np.mean(indexed))
    print(
        f"{len(paths)} shared clips, {seconds / 60:.1f} min of video, {len(scalars)} segments: "
        f"{per_hour:,.0f} segments per hour of video"
    )
    print(
        f"per segment row: scalars {scalar:,.0f} B, thumbnail {thumb:,.0f} B (p95 {np.percentile(thumbs, 95):,.0f}),"
        f" scalar indexes ~{index:,.0f} B\n"
    )
    graph = 2 * args.hnsw_m * 4 * (1 + 1 / args.hnsw_m) + 16
    for dim in args.dims:
        vector = 4 * dim
        row = vector + graph + scalar + thumb + index
        print(
            f"dim {dim}: {row:,.0f} B a row in query-node memory = vector {vector:,} + HNSW graph {graph:,.0f} + "
            f"scalars {scalar:,.0f} + thumbnail {thumb:,.0f} + scalar indexes {index:,.0f} "
            f"({row / vector:.2f}x the vector alone)"
        )
        print(
            f"  {'segments':>14s} {'video hours':>12s} {'memory GiB':>11s} {'query nodes':>12s} "
            f"{'sealed segments at 1 / 4 / 8 GB':>32s}"
        )
        for n in SIZES:
            memory = n * row / GIB
            nodes = max(1, math.ceil(memory / (NODE_GIB * FILL)))
            disk = n * (vector + scalar + thumb)  # what a sealed segment's size counts (binlogs, not the index)
            segs = " / ".join(f"{math.ceil(disk / (size * 1e9)):,}" for size in (1, 4, 8))
            print(f"  {n:>14,} {n / per_hour:>12,.0f} {memory:>11,.0f} {nodes:>12,} {segs:>32s}")
        print()
    print(f"query nodes: {NODE_GIB} GiB each, filled to {FILL:.0%}; one replica (double for two)")


if __name__ == "__main__":
    with recorded("milvus_sizing"):
        main()
