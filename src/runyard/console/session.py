"""The console's session and CSRF tokens: signed cookies, no server-side state.

A sign-in keeps the API key's SHA-256 hash — what the server stores, never the key — in an
http-only, same-site cookie, signed with a key derived from the server's secret and stamped with
its issue time. A stolen cookie opens the console until it expires, but is no API key. Every
request looks the hash up again, so revoking the key ends every console session made with it,
and any API server sharing the secret (scale-out) accepts the cookie.

Forms carry a CSRF token: an HMAC of a random per-browser nonce (its own cookie) and the
session's signature. A page on another site can neither read the token nor, having planted a
nonce of its own, make one that fits the victim's session.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

SESSION_COOKIE = "runyard_session"
NONCE_COOKIE = "runyard_csrf"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


#: A cookie issued by a server whose clock runs a little ahead is still good.
CLOCK_SKEW_SECONDS = 60


@dataclass(frozen=True)
class Session:
    #: The API key's hash, as ``Accounts`` stores it.
    key_hash: str
    #: The cookie's signature: what CSRF tokens are bound to.
    signature: str


class SessionSigner:
    def __init__(self, secret: bytes, max_age: int) -> None:
        # A key of its own: a cookie signature can never pass for a download-link one.
        self._key = hmac.new(secret, b"runyard console session", hashlib.sha256).digest()
        self.max_age = max_age

    def _sign(self, message: str) -> str:
        return _b64(hmac.new(self._key, message.encode(), hashlib.sha256).digest())

    def issue(self, key_hash: str, now: float | None = None) -> str:
        """The session cookie's value for the key hashed to ``key_hash``."""
        body = f"{_b64(key_hash.encode())}.{int(now if now is not None else time.time())}"
        return f"{body}.{self._sign(body)}"

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session in ``cookie``, or None if it is missing, forged or expired."""
        if not cookie or cookie.count(".") != 2:
            return None
        body, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(self._sign(body).encode(), signature.encode("utf-8", "replace")):
            return None
        encoded, _, issued = body.partition(".")
        try:
            age = (now if now is not None else time.time()) - int(issued)
            key_hash = _unb64(encoded).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if not -CLOCK_SKEW_SECONDS <= age < self.max_age:
            return None
        return Session(key_hash=key_hash, signature=signature)

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(24)

    def csrf_token(self, nonce: str, session: Session | None) -> str:
        bound = session.signature if session else ""
        return self._sign(f"csrf\n{nonce}\n{bound}")

    def check_csrf(self, token: str, nonce: str | None, session: Session | None) -> bool:
        if not nonce or not token:
            return False
        expected = self.csrf_token(nonce, session).encode()
        return hmac.compare_digest(expected, token.encode("utf-8", "replace"))
