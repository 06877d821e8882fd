"""`clipstream reindex`: the catalogue moves to another model's collections while searches keep answering."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from services.clip.loader import load_clip
from services.clip.random_model import write_random_clip
from services.common.settings import CommonSettings
from services.common.vectors import VIDEOS_ALIAS, SegmentStore, segments_collection
from services.indexer.reindex import reindex
from services.intake.registration import register
from services.intake.watch import Outcomes, publish_and_wait
from services.media.decode import DecodeOptions, decode_video
from services.media.settings import MediaSettings
from services.media.synthetic import write_clip
from services.search.engine import SearchEngine
from services.search.settings import SearchSettings

SETTLE_S = 6.0  # the embedder caches the served model for 5 s


def test_reindex_switches_aliases_while_searches_answer(
    common: CommonSettings, media_root: Path, tmp_path: Path
) -> None:
    clip = write_clip(media_root / "reindex" / "target.mp4", seconds=8.0, size=(320, 180), seed=77, cuts=(4.0,))
    target = register(clip, tenant="reindex")
    assert target.event_id in publish_and_wait(common, [target], 300).indexed
    query = decode_video(clip, DecodeOptions()).segments[1].keyframes[0].jpeg
    store = SegmentStore(common)
    old_model, _ = store.model_of(store.served() or "")
    videos_before = store.count(collection=VIDEOS_ALIAS)
    new_spec = write_random_clip(tmp_path / "next", seed=1, name="clip-tiny-next")
    new_model = load_clip(str(new_spec)).ref

    answers: list[tuple[bool, str]] = []
    errors: list[BaseException] = []
    switched = threading.Event()
    stop = threading.Event()

    def search_forever() -> None:
        engine = SearchEngine(SearchSettings())
        while not stop.is_set():
            after = switched.is_set()
            try:
                hits = engine.by_image(query, limit=1)
                answers.append((after, hits[0].video_id if hits else ""))
            except Exception as exc:
                errors.append(exc)

    late = register(write_clip(media_root / "reindex" / "late.mp4", seconds=4.0, seed=78), tenant="reindex")
    late_outcome: list[Outcomes] = []
    publisher = threading.Thread(target=lambda: late_outcome.append(publish_and_wait(common, [late], 300)), daemon=True)
    searcher = threading.Thread(target=search_forever, daemon=True)
    searcher.start()
    try:
        publisher.start()  # an upload that arrives while reindex runs must not be left in the old collections
        report = reindex(store, str(new_spec), MediaSettings(), settle_s=SETTLE_S)
        switched.set()
        publisher.join(300)
        assert late_outcome and late.event_id in late_outcome[0].indexed
        time.sleep(SETTLE_S)
        assert store.video(late.video_id) is not None, "the upload indexed during reindex is not served"
        while sum(after for after, _ in answers) < 3 and searcher.is_alive() and not errors:
            stop.wait(0.2)
        stop.set()
        searcher.join(60)
        assert report.failed == {} and report.switched
        assert store.served() == segments_collection(new_model)
        assert store.count(collection=VIDEOS_ALIAS) == videos_before + 1 <= report.videos + 1
        assert errors == []
        before = [vid for after, vid in answers if not after]
        after = [vid for after, vid in answers if after]
        assert before and len(after) >= 3
        assert set(before) == set(after) == {target.video_id}
    finally:
        stop.set()
        store.switch_aliases(old_model)  # later test modules search the pipeline's own model
        time.sleep(SETTLE_S)  # the embedder sees the old model served again before later modules upload
