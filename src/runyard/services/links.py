"""Signed, expiring download links: anyone holding one may download, no API key needed."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote

from runyard.services.errors import NotFound

FILES_PATH = "/api/v2/files"


class LinkSigner:
    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        self.secret = secret
        self.ttl = ttl_seconds

    def _signature(self, name: str, filename: str, expires: int) -> str:
        message = f"{name}\n{filename}\n{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def expiry(self, now: float | None = None) -> int:
        """When a link made ``now`` stops working (unix seconds)."""
        return int(now if now is not None else time.time()) + self.ttl

    def url(self, base_url: str, name: str, filename: str, *, expires: int) -> str:
        sig = self._signature(name, filename, expires)
        return (
            f"{base_url.rstrip('/')}{FILES_PATH}/{quote(name, safe='')}/{quote(filename, safe='')}"
            f"?expires={expires}&signature={sig}"
        )

    def verify(self, name: str, filename: str, expires: int, signature: str) -> None:
        expected = self._signature(name, filename, expires).encode()
        # Bytes, because compare_digest refuses non-ASCII str — and a link is client input.
        if not hmac.compare_digest(expected, signature.encode()) or expires < time.time():
            raise NotFound("download link is invalid or has expired")
