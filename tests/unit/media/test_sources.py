from pathlib import Path

import pytest

from services.media.errors import DecodeError
from services.media.sources import SourcePolicy, check_http, check_s3, open_source, resolve_file


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "allowed").mkdir()
    (tmp_path / "allowed" / "ok.mp4").write_bytes(b"x")
    (tmp_path / "secret.mp4").write_bytes(b"x")
    return tmp_path / "allowed"


def test_file_under_root_resolves(root: Path) -> None:
    assert resolve_file((root / "ok.mp4").as_uri(), [root]) == (root / "ok.mp4").resolve()


@pytest.mark.parametrize(
    "uri_suffix",
    ["/../secret.mp4", "/%2e%2e/secret.mp4"],
)
def test_traversal_out_of_root_is_refused(root: Path, uri_suffix: str) -> None:
    with pytest.raises(DecodeError) as err:
        resolve_file(root.as_uri() + uri_suffix, [root])
    assert err.value.reason == "source_not_allowed"


def test_symlink_escaping_root_is_refused(root: Path) -> None:
    (root / "link.mp4").symlink_to(root.parent / "secret.mp4")
    with pytest.raises(DecodeError) as err:
        resolve_file((root / "link.mp4").as_uri(), [root])
    assert err.value.reason == "source_not_allowed"


@pytest.mark.parametrize("uri", ["ftp://host/x.mp4", "gopher://x", "file://evil.example/etc/passwd", "data:,x"])
def test_other_schemes_and_remote_file_hosts_are_refused(root: Path, uri: str) -> None:
    with pytest.raises(DecodeError) as err:
        resolve_file(uri, [root])
    assert err.value.reason == "source_not_allowed"


def test_missing_file_is_not_found(root: Path) -> None:
    with pytest.raises(DecodeError) as err:
        resolve_file((root / "nope.mp4").as_uri(), [root])
    assert err.value.reason == "source_not_found"


HTTP_PREFIXES = ["https://cdn.example.com/videos/", "http://127.0.0.1:8888/public"]


@pytest.mark.parametrize(
    "uri",
    [
        "https://cdn.example.com/videos/a.mp4",
        "https://CDN.example.com:443/videos/sub/a%20b.mp4",
        "http://127.0.0.1:8888/public/x.webm",
    ],
)
def test_http_under_an_allowed_prefix(uri: str) -> None:
    assert check_http(uri, HTTP_PREFIXES) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "https://cdn.example.com.evil.net/videos/a.mp4",  # host suffix trick
        "https://user:pw@cdn.example.com/videos/a.mp4",  # credentials
        "https://evil.net@cdn.example.com/videos/a.mp4",
        "https://cdn.example.com/videos/../admin/a.mp4",  # traversal
        "https://cdn.example.com/videos/%2e%2e/admin/a.mp4",
        "https://cdn.example.com:8443/videos/a.mp4",  # other port
        "http://cdn.example.com/videos/a.mp4",  # downgrade
        "http://127.0.0.1:8888/publicity/x.webm",  # prefix must end on a path segment
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
    ],
)
def test_http_outside_the_prefixes_is_refused(uri: str) -> None:
    with pytest.raises(DecodeError) as err:
        check_http(uri, HTTP_PREFIXES)
    assert err.value.reason == "source_not_allowed"


def test_s3_prefixes() -> None:
    assert check_s3("s3://uploads/tenant-a/v.mp4", ["s3://uploads/tenant-a/"]) == ("uploads", "tenant-a/v.mp4")
    for uri in (
        "s3://uploads/tenant-b/v.mp4",
        "s3://other/tenant-a/v.mp4",
        "s3://uploads/tenant-a/../b/v.mp4",
        "s3://k:s@uploads/tenant-a/v.mp4",
        "s3:///tenant-a/v.mp4",
    ):
        with pytest.raises(DecodeError) as err:
            check_s3(uri, ["s3://uploads/tenant-a/"])
        assert err.value.reason == "source_not_allowed", uri


@pytest.mark.parametrize("uri", ["s3://uploads/x.mp4", "https://cdn.example.com/videos/a.mp4"])
def test_remote_schemes_are_closed_unless_configured(uri: str) -> None:
    with pytest.raises(DecodeError) as err, open_source(uri, SourcePolicy()):
        pass
    assert err.value.reason == "source_not_allowed"


def test_s3_prefixes_match_whole_path_segments() -> None:
    assert check_s3("s3://b/tenant-a/x.mp4", ["s3://b/tenant-a"]) == ("b", "tenant-a/x.mp4")
    with pytest.raises(DecodeError) as err:
        check_s3("s3://b/tenant-a-evil/x.mp4", ["s3://b/tenant-a"])
    assert err.value.reason == "source_not_allowed"


@pytest.mark.parametrize("bad", ["\t", "\n", " ", "\x7f"])
def test_white_space_and_control_characters_in_uris_are_refused(root: Path, bad: str) -> None:
    policy = SourcePolicy(allowed_roots=[root], http_prefixes=["http://127.0.0.1:1/v/"])
    for uri in ((root / "ok.mp4").as_uri() + bad, f"http://127.0.0.1:1/v/a{bad}.mp4"):
        with pytest.raises(DecodeError) as err, open_source(uri, policy):
            pass
        assert err.value.reason == "bad_uri"


def test_names_too_long_and_symlink_loops_are_precise_errors(root: Path) -> None:
    (root / "loop-a").symlink_to(root / "loop-b")
    (root / "loop-b").symlink_to(root / "loop-a")
    for uri in ((root / ("x" * 5000)).as_uri(), (root / "loop-a").as_uri()):
        with pytest.raises(DecodeError) as err:
            resolve_file(uri, [root])
        assert err.value.reason == "bad_uri", err.value.detail
