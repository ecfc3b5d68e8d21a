"""Users and their API keys. Keys are shown once at creation and stored only as a hash."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runyard.services.errors import (
    ConcurrencyLimit,
    InsufficientBalance,
    InvalidInput,
    InvalidToken,
    NotFound,
)
from runyard.storage import ApiKey, Database, RawQuery, Run, User

KEY_PREFIX = "ry_"
_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: Statuses that hold one of a user's concurrent-run slots.
UNFINISHED = ("ready", "running", "aborting")
#: ``users.credit`` and ``users.price_per_cpu_second`` are strings of this many characters.
_DECIMAL_CHARS = 32
#: The largest price per CPU-second: a run's usage (four decimals) must still fit its column.
MAX_PRICE = Decimal(10**9)
#: The largest value of an ``Integer`` column (32 bits on PostgreSQL).
MAX_INT32 = 2**31 - 1


class Unset:
    """``set_limits`` leaves a field alone when given this (``None`` clears it)."""


UNSET = Unset()


def parse_decimal(
    field: str, value: str, *, minimum: Decimal | None = None, maximum: Decimal | None = None
) -> str:
    """``value`` as the canonical decimal text stored in ``users``; ``InvalidInput`` if bad."""
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise InvalidInput(f"{field} must be a decimal number, not {value!r}") from None
    if not number.is_finite():
        raise InvalidInput(f"{field} must be a finite decimal number, not {value!r}")
    if minimum is not None and number < minimum:
        raise InvalidInput(f"{field} must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise InvalidInput(f"{field} must be at most {maximum}")
    text = format(number, "f")
    if len(text) > _DECIMAL_CHARS:
        raise InvalidInput(f"{field} is longer than {_DECIMAL_CHARS} characters")
    return text


def show_balance(credit: str | None) -> str:
    """``balance`` of ``GET /users/account``: at least two decimals, ``"0.00"`` without credit."""
    if credit is None:
        return "0.00"
    number = Decimal(credit)
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        number = number.quantize(Decimal("0.01"))
    return format(number, "f")


@dataclass(frozen=True)
class Limits:
    """What an operator set for a user; ``None``: not kept / no limit."""

    credit: str | None
    price_per_cpu_second: str | None
    max_concurrent_runs: int | None


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
        exists = InvalidInput(f"user {name!r} already exists")
        try:
            with self.db.session() as s, s.begin():
                if s.scalar(select(User.id).where(User.name == name)) is not None:
                    raise exists
                user = User(name=name, created_at=time.time())
                s.add(user)
                s.flush()
                return user.id
        except IntegrityError:  # made meanwhile by another process (servers starting together)
            raise exists from None

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
        return self.authenticate_hash(hash_key(key))

    def authenticate_hash(self, digest: str) -> int:
        """``authenticate`` for a key known only by its hash (a console session holds that)."""
        row = self._by_hash.first(digest=digest)
        # The lookup is by hash, so timing reveals nothing about the key; the explicit
        # constant-time comparison keeps it that way should the lookup ever change.
        if row is None or not hmac.compare_digest(row[1], digest):
            raise InvalidToken("invalid token")
        return int(row[0])

    # --- credit, price and limits ---------------------------------------------------------

    def limits(self, user_id: int) -> Limits:
        with self.db.session() as s:
            user = s.get(User, user_id)
        if user is None:
            raise NotFound("user not found")
        return Limits(user.credit, user.price_per_cpu_second, user.max_concurrent_runs)

    def balance(self, user_id: int) -> dict[str, str | int]:
        """``GET /users/account``: credits never expire here, hence the 0."""
        return {
            "balance": show_balance(self.limits(user_id).credit),
            "balance_expiration_at": 0,
        }

    def set_limits(
        self,
        name: str,
        *,
        credit: str | Unset | None = UNSET,
        price_per_cpu_second: str | Unset | None = UNSET,
        max_concurrent_runs: int | Unset | None = UNSET,
    ) -> Limits:
        """Set (a value), clear (``None``) or keep (``UNSET``) each of the user's limits."""
        values: dict[str, str | int | None] = {}
        if not isinstance(credit, Unset):
            values["credit"] = None if credit is None else parse_decimal("credit", credit)
        if not isinstance(price_per_cpu_second, Unset):
            values["price_per_cpu_second"] = (
                None
                if price_per_cpu_second is None
                else parse_decimal(
                    "price per CPU-second",
                    price_per_cpu_second,
                    minimum=Decimal(0),
                    maximum=MAX_PRICE,
                )
            )
        if not isinstance(max_concurrent_runs, Unset):
            if max_concurrent_runs is not None and not 1 <= max_concurrent_runs <= MAX_INT32:
                raise InvalidInput(f"max concurrent runs must be from 1 to {MAX_INT32} (or none)")
            values["max_concurrent_runs"] = max_concurrent_runs
        uid = self.user_id(name)
        with self.db.session() as s, s.begin():
            user = s.get(User, uid)
            if user is None:
                raise NotFound(f"unknown user {name!r}")
            for field, value in values.items():
                setattr(user, field, value)
            return Limits(user.credit, user.price_per_cpu_second, user.max_concurrent_runs)

    def admit_run(self, s: Session, user_id: int) -> None:
        """Refuse a new run when the user's credit is used up or their run slots are full.

        Called by ``Runs.create`` inside the transaction that inserts the run, after it took
        the user row's write lock: two starts racing for the last slot or the last credit are
        serialized, and a refused start creates nothing.
        """
        user = s.get(User, user_id)
        if user is None:
            raise NotFound("user not found")
        if user.credit is not None and Decimal(user.credit) <= 0:
            raise InsufficientBalance("insufficient balance")
        limit = user.max_concurrent_runs
        if limit is not None:
            active = s.scalar(
                select(func.count())
                .select_from(Run)
                .where(Run.user_id == user_id, Run.status.in_(UNFINISHED))
            )
            if (active or 0) >= limit:
                raise ConcurrencyLimit(
                    f"concurrent-run limit reached: {limit} runs are already ready or running"
                )
