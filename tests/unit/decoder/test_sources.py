from pathlib import Path

import pytest

from services.decoder.errors import DecodeError
from services.decoder.sources import resolve_file


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
