"""Playback links: signed for one video of one tenant, for a while."""

import pytest

from services.search.playback import BadLink, Links


def test_a_link_names_its_video_and_tenant_until_it_expires() -> None:
    links = Links.from_keys({"k": "tenant-a"}, None, ttl_s=60)
    token = links.sign("v1", "tenant-a", now=1000.0)
    assert links.verify(token, now=1059.0) == ("v1", "tenant-a")
    with pytest.raises(BadLink, match="expired"):
        links.verify(token, now=1061.0)


def test_a_changed_link_or_another_key_is_refused() -> None:
    links = Links.from_keys({"k": "tenant-a"}, None, ttl_s=60)
    token = links.sign("v1", "tenant-a")
    mac = token.split(".")[1]
    other = Links.from_keys({"k": "tenant-a"}, None, ttl_s=60).sign("v2", "tenant-a").split(".")[0]
    with pytest.raises(BadLink):
        links.verify(f"{other}.{mac}")  # another video's payload under this signature
    with pytest.raises(BadLink):
        Links.from_keys({"other": "tenant-a"}, None, ttl_s=60).verify(token)  # other deployment's keys
    assert Links.from_keys({"k": "tenant-a"}, "s3cret", 60).sign("v1", "t", now=1.0) != links.sign("v1", "t", now=1.0)
    # replicas configured alike verify each other's links
    assert Links.from_keys({"k": "tenant-a"}, None, ttl_s=60).verify(token) == ("v1", "tenant-a")
