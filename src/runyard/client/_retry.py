"""When to send a request again, and after how long."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time

import httpx

#: Replies worth another try of an idempotent call: the server or a proxy in front of it failed.
RETRY_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class Retry:
    """Retry policy: ``attempts`` in all, exponential backoff from ``backoff`` seconds.

    A 429 is retried for every call (the server refused it before doing anything), honouring
    ``Retry-After``; a 5xx or a broken connection only for idempotent calls (GET, PUT, DELETE),
    since a POST may have taken effect; a refused connection for every call. A ``Retry-After``
    longer than ``max_delay`` is not waited out: the error is raised at once.
    """

    attempts: int = 4
    backoff: float = 0.5
    max_delay: float = 60.0

    def after_response(
        self, response: httpx.Response, attempt: int, idempotent: bool
    ) -> float | None:
        """Seconds to wait before trying again, or None to take this reply."""
        if attempt + 1 >= self.attempts:
            return None
        if response.status_code == 429:
            asked = retry_after(response)
            if asked is not None:
                return asked if asked <= self.max_delay else None
            return self._backoff(attempt)
        if response.status_code in RETRY_STATUSES and idempotent:
            return self._backoff(attempt)
        return None

    def after_error(
        self, error: httpx.TransportError, attempt: int, idempotent: bool
    ) -> float | None:
        """Seconds to wait before trying again, or None to raise ``error``."""
        if attempt + 1 >= self.attempts:
            return None
        if isinstance(error, httpx.LocalProtocolError | httpx.UnsupportedProtocol):
            return None  # the request itself is wrong: sending it again changes nothing
        if idempotent or isinstance(error, httpx.ConnectError):
            return self._backoff(attempt)
        return None

    def _backoff(self, attempt: int) -> float:
        # Full jitter: many clients refused together do not come back together.
        return float(min(self.max_delay, self.backoff * 2**attempt) * random.uniform(0.5, 1.0))


NO_RETRY = Retry(attempts=1)


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds, from either of its forms (seconds or an HTTP date)."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None


def poll_delays(first: float = 0.2, factor: float = 1.5, cap: float = 5.0) -> Iterator[float]:
    """Waits between polls of a run: quick at first, for short runs, then every ``cap`` s."""
    delay = first
    while True:
        yield delay
        delay = min(cap, delay * factor)
