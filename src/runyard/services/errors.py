"""What a use case can refuse. The HTTP layer maps each to its status and code."""

from __future__ import annotations

# Raised by storage when the database cannot take the work now (its disk full, or locked past
# the retries): nothing was kept, and the same request may succeed later.
from runyard.storage.database import StorageUnavailable as StorageUnavailable

# Raised by storage for a text value no database may hold (NUL): a client's error like
# ``InvalidInput``, whichever service the value went through.
from runyard.storage.database import UnstorableText as UnstorableText


class ServiceError(Exception):
    """Base of every refusal a client can cause; ``message`` is safe to show."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(ServiceError):
    """Missing, or not the caller's: the two are indistinguishable on purpose."""


class InvalidInput(ServiceError):
    """Well-formed but unacceptable (422 / 11000)."""


class ExportFailed(ServiceError):
    """An export could not be written (500 / 10000); the log has why."""


class Unauthenticated(ServiceError):
    """No key (12001)."""


class InvalidToken(ServiceError):
    """Unknown or revoked key (12002)."""


class VersionNotFound(ServiceError):
    """The worker exists but not the requested version, or it has none (404 / 50003)."""


class WrongState(ServiceError):
    """The run's state does not allow the operation, e.g. abort of a finished run (409 / 70002)."""


class InsufficientBalance(ServiceError):
    """The caller's credit is used up (402 / 30001)."""


class ConcurrencyLimit(ServiceError):
    """The caller already has their maximum of unfinished runs (429 / 30003)."""
