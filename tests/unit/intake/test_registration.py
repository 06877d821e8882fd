from pathlib import Path

from services.intake.registration import canonical_uri, discover, event_id_for, register, video_id_for


def test_same_source_same_video_new_event(tmp_path: Path) -> None:
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"x")
    first, second = register(clip), register(tmp_path / "." / "a.mp4")
    assert first.video_id == second.video_id
    assert first.event_id != second.event_id
    assert first.uri == clip.resolve().as_uri()


def test_video_ids_differ_by_source() -> None:
    assert video_id_for("t", "file:///a.mp4") != video_id_for("t", "file:///b.mp4")


def test_two_tenants_registering_one_uri_get_two_videos(tmp_path: Path) -> None:
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"x")
    assert register(clip, tenant="a").video_id != register(clip, tenant="b").video_id


def test_an_idempotency_key_is_the_tenants_own() -> None:
    """Two tenants that happen to pick the same Idempotency-Key make two uploads: one tenant's retry must never
    be answered with (or fenced by) the other's registration."""
    assert event_id_for("a", "order-17") == event_id_for("a", "order-17")  # a retry is the same event
    assert event_id_for("a", "order-17") != event_id_for("b", "order-17")
    assert event_id_for("a", "order-17") != event_id_for("a", "order-18")
    assert event_id_for("a", None) is None and event_id_for("a", "") is None  # no key: a new event each time


def test_discover_walks_folders_for_video_suffixes(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("b.mp4", "a.MKV", "notes.md", "sub/c.webm"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in discover([tmp_path])] == ["a.MKV", "b.mp4", "c.webm"]


def test_remote_uris_are_kept_verbatim() -> None:
    assert canonical_uri("s3://bucket/key.mp4") == "s3://bucket/key.mp4"
