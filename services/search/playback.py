"""Playback links: a `<video>` element cannot send an API key, so the API hands out a short-lived signed
link (`/media/<token>`) for one video of the caller's tenant; the link is the capability.

The token is `base64url(json{video, tenant, expires}).hmac`; the key comes from settings or, by default,
from the API keys themselves, so every replica of the search service verifies what another one signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from services.common.errors import PermanentError


class BadLink(PermanentError):
    reason = "bad_media_link"


class Links:
    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    @classmethod
    def from_keys(cls, api_keys: dict[str, str], secret: str | None, ttl_s: int) -> Links:
        material = secret or "clipstream media links\n" + json.dumps(sorted(api_keys.items()))
        return cls(hashlib.sha256(material.encode()).digest(), ttl_s)

    def sign(self, video_id: str, tenant: str, now: float | None = None) -> str:
        body = json.dumps({"v": video_id, "t": tenant, "e": int((now or time.time()) + self.ttl_s)}).encode()
        payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return f"{payload}.{self._mac(payload)}"

    def verify(self, token: str, now: float | None = None) -> tuple[str, str]:
        """(video id, tenant) of a valid, unexpired link."""
        payload, _, mac = token.partition(".")
        if not payload or not hmac.compare_digest(mac, self._mac(payload)):
            raise BadLink("the media link is not valid")
        body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        if int(body["e"]) < (now or time.time()):
            raise BadLink("the media link has expired: ask for a new one")
        return str(body["v"]), str(body["t"])

    def _mac(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()[:32]
