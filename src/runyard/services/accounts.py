"""Users and their API keys. Keys are shown once at creation and stored only as a hash."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import bindparam, select

from runyard.services.errors import InvalidInput, InvalidToken, NotFound
from runyard.storage import ApiKey, Database, RawQuery, User

KEY_PREFIX = "ry_"
_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    id: int
    user: str
    prefix: str
    created_at: float
    revoked_at: float | None


class Accounts:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._by_hash = RawQuery(
            db.engine,
            select(ApiKey.user_id, ApiKey.key_hash).where(
                ApiKey.key_hash == bindparam("digest"), ApiKey.revoked_at.is_(None)
            ),
        )

    def create_user(self, name: str) -> int:
        if not _USER_NAME.match(name):
            raise InvalidInput(
                f"invalid user name {name!r}: use 1-64 letters, digits, '_', '.' or '-'"
            )
        with self.db.session() as s, s.begin():
            if s.scalar(select(User.id).where(User.name == name)) is not None:
                raise InvalidInput(f"user {name!r} already exists")
            user = User(name=name, created_at=time.time())
            s.add(user)
            s.flush()
            return user.id

    def user_id(self, name: str) -> int:
        with self.db.session() as s:
            uid = s.scalar(select(User.id).where(User.name == name))
        if uid is None:
            raise NotFound(f"unknown user {name!r}")
        return uid

    def has_users(self) -> bool:
        with self.db.session() as s:
            return s.scalar(select(User.id).limit(1)) is not None

    def create_key(self, user_name: str) -> str:
        """Make a new key for the user and return it; this is the only time it is visible."""
        uid = self.user_id(user_name)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self.db.session() as s, s.begin():
            s.add(
                ApiKey(
                    user_id=uid,
                    key_hash=hash_key(key),
                    prefix=key[:10],
                    created_at=time.time(),
                )
            )
        return key

    def list_keys(self, user_name: str | None = None) -> list[KeyInfo]:
        query = select(ApiKey, User.name).join(User, User.id == ApiKey.user_id).order_by(ApiKey.id)
        if user_name is not None:
            query = query.where(User.id == self.user_id(user_name))
        with self.db.session() as s:
            return [
                KeyInfo(k.id, name, k.prefix, k.created_at, k.revoked_at)
                for k, name in s.execute(query)
            ]

    def revoke_key(self, key_id: int) -> None:
        with self.db.session() as s, s.begin():
            key = s.get(ApiKey, key_id)
            if key is None:
                raise NotFound(f"no key with id {key_id}")
            if key.revoked_at is None:
                key.revoked_at = time.time()

    def authenticate(self, key: str) -> int:
        """The user id owning ``key``; raises ``InvalidToken`` for unknown or revoked keys."""
        digest = hash_key(key)
        row = self._by_hash.first(digest=digest)
        # The lookup is by hash, so timing reveals nothing about the key; the explicit
        # constant-time comparison keeps it that way should the lookup ever change.
        if row is None or not hmac.compare_digest(row[1], digest):
            raise InvalidToken("invalid token")
        return int(row[0])
