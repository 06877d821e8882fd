"""Deletes and patches decide what a later write of a video's embedding keeps, whatever the order."""

from datetime import UTC, datetime, timedelta

import pytest

from services.common.errors import PermanentError
from services.common.messages import ModelRef, SegmentEmbedding, VideoInfo
from services.common.vectors.overrides import Override, apply_patch, epoch_ms, patched_fields
from services.common.vectors.store import StoredVersion, superseded

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _embedding(uploaded_at: datetime, title: str = "original") -> SegmentEmbedding:
    return SegmentEmbedding(
        event_id="e1",
        video_id="v1",
        segment_index=0,
        segment_count=1,
        start_s=0.0,
        end_s=1.0,
        keyframe_times=[0.5],
        vector=[1.0, 0.0],
        model=ModelRef(name="m", version="1", dim=2),
        video=VideoInfo(uri="file:///x.mp4", tenant="t", title=title, creator="c", uploaded_at=uploaded_at),
    )


def test_a_delete_removes_uploads_up_to_it_and_not_a_later_reupload() -> None:
    tomb = Override("v1", "t").deleted(epoch_ms(T0 + timedelta(minutes=1)))
    assert tomb.deletes(T0)  # the deleted upload's late message
    assert tomb.deletes(T0 + timedelta(minutes=1))
    assert not tomb.deletes(T0 + timedelta(minutes=2))  # registered after the delete: a new life
    assert not Override("v1", "t").deletes(T0)  # no delete recorded


def test_a_patch_applies_to_uploads_before_it_only() -> None:
    patch = Override("v1", "t").patched({"title": "fixed", "tags": ["a"]}, epoch_ms(T0 + timedelta(minutes=1)))
    late = apply_patch(_embedding(T0), patch)
    assert (late.video.title, late.video.tags, late.video.creator) == ("fixed", ["a"], "c")
    reupload = apply_patch(_embedding(T0 + timedelta(minutes=2), title="uploader's own"), patch)
    assert reupload.video.title == "uploader's own"
    assert apply_patch(_embedding(T0), None).video.title == "original"


def test_an_override_round_trips_through_its_row() -> None:
    o = Override("v1", "t", deleted_at=5, patched_at=7, patch={"creator": "zoë 🎬"})
    assert Override.from_row(o.to_row()) == o


def test_patched_fields_rewrite_every_tag_slot() -> None:
    fields = patched_fields({"tags": ["x", "y"], "title": "t"}, {})
    assert fields["tag0"] == "x" and fields["tag1"] == "y" and fields["tag7"] == ""
    assert fields["title"] == "t" and "creator" not in fields


def test_metadata_patches_merge_key_by_key_and_null_removes() -> None:
    first = Override("v1", "t").patched({"metadata": {"lang": "de", "rights": None}}, 10)
    both = first.patched({"metadata": {"lang": "fr", "ok": True}, "title": "x"}, 20)
    assert both.patch == {"metadata": {"lang": "fr", "rights": None, "ok": True}, "title": "x"}
    assert both.patched_at == 20 and first.patched({}, 5).patched_at == 10
    row = {"metadata": {"lang": "en", "rights": "cc", "kept": 1}}
    assert patched_fields(both.patch, row)["metadata"] == {"lang": "fr", "kept": 1, "ok": True}
    e = _embedding(T0)
    e = e.model_copy(update={"video": e.video.model_copy(update={"metadata": {"rights": "cc", "kept": 1}})})
    late = apply_patch(e, both.patched({}, epoch_ms(T0 + timedelta(minutes=1))))
    assert late.video.metadata == {"kept": 1, "lang": "fr", "ok": True}


def test_an_override_whose_patch_outgrows_its_column_is_refused() -> None:
    big = Override("v1", "t").patched({"title": "x" * 9000}, 1)
    with pytest.raises(PermanentError):
        big.to_row()


def test_a_backfill_is_superseded_by_a_later_second_or_at_its_second_by_an_upload() -> None:
    """A late backfill of the version before a re-upload must not replace it; at the same second an upload's own
    write beats a backfill's (after a reindex's switch uploads go straight to the new collection); the same
    backfill at the same second is a replay; an upload's own write is never refused (gateways' clocks differ)."""
    at = int(T0.timestamp())
    upload, backfill = _embedding(T0), _embedding(T0).model_copy(update={"event_id": "backfill-abc"})
    assert superseded(backfill, StoredVersion(at + 1, "e0"))
    assert superseded(backfill, StoredVersion(at + 1, "backfill-def"))
    assert superseded(backfill, StoredVersion(at, "e0"))  # a fresh upload at that second stays
    assert not superseded(backfill, StoredVersion(at, "backfill-abc"))  # a replay rewrites its own rows
    assert not superseded(backfill, StoredVersion(at - 1, "e0"))
    assert not superseded(backfill, None)
    assert not superseded(
        _embedding(T0 + timedelta(milliseconds=999)).model_copy(update={"event_id": "backfill-x"}),
        StoredVersion(at, "backfill-y"),
    )
    for stored in (StoredVersion(at + 1, "e0"), StoredVersion(at, "backfill-abc"), StoredVersion(at - 1, "e0"), None):
        assert not superseded(upload, stored)  # an upload's own write always lands
