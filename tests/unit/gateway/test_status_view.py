"""A view that cannot be sure answers 503, never a wrong 404; within what it knows, the newest upload wins and
a listing pages newest first without repeats."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.common.messages import VideoStatus, VideoUploaded
from services.common.settings import CommonSettings
from services.gateway.status_view import NotCaughtUp, StatusView, cursor_of


def _view(tmp_path: Path) -> StatusView:
    return StatusView(CommonSettings(home=tmp_path, kafka_bootstrap="127.0.0.1:9"), sync_timeout_s=0.1)


def test_an_unknown_upload_is_503_while_the_view_has_not_caught_up(tmp_path: Path) -> None:
    view = _view(tmp_path)  # never reached Kafka
    with pytest.raises(NotCaughtUp):
        view.upload("e-unknown")
    with pytest.raises(NotCaughtUp):
        view.video("v-unknown")


def test_what_this_replica_registered_is_visible_at_once(tmp_path: Path) -> None:
    view = _view(tmp_path)
    upload = VideoUploaded(video_id="v1", uri="file:///a.mp4", tenant="t")
    view.note(upload)
    found = view.upload(upload.event_id)
    assert found is not None and found.stage == "registered" and found.tenant == "t"
    # the enricher's later record of the same upload moves it on; a stale "registered" never moves it back
    view.apply(VideoStatus(event_id=upload.event_id, video_id="v1", tenant="t", stage="indexed"))
    view.note(upload)
    assert view.video("v1").stage == "indexed"  # type: ignore[union-attr]


def test_index_order_is_newest_upload_first_and_cursors_resume_after_the_last(tmp_path: Path) -> None:
    view = _view(tmp_path)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(5):
        view.note(VideoUploaded(video_id=f"v{i}", uri=f"file:///{i}.mp4", tenant="t", uploaded_at=start + timedelta(i)))
    view.note(VideoUploaded(video_id="other", uri="file:///o.mp4", tenant="u", uploaded_at=start))
    # a re-upload of v0 moves it to the front (its older entry is gone, not listed twice)
    view.note(VideoUploaded(video_id="v0", uri="file:///0.mp4", tenant="t", uploaded_at=start + timedelta(9)))
    order = [video_id for _, video_id in view._by_tenant["t"]]
    assert order == ["v0", "v4", "v3", "v2", "v1"]
    assert cursor_of(view.video("v4")) < cursor_of(view.video("v3"))  # type: ignore[arg-type]
