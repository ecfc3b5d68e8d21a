"""What the client raises: one exception for every refusal the API answers with."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """The API answered with a non-zero ``code`` (or with something that is not its envelope).

    ``code`` is the application code of the reply (11004, 12002, …); a reply that is not an
    envelope at all — a proxy's HTML error page, say — has ``code`` 0 and its HTTP status in
    ``status_code``.
    """

    def __init__(
        self,
        status_code: int,
        code: int,
        message: str,
        details: list[str] | None = None,
        request_id: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details or []
        self.request_id = request_id
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.code or self.status_code} {self.message}"
        if self.details:
            text += ": " + "; ".join(self.details)
        if self.request_id:
            text += f" (request {self.request_id})"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        args = (self.status_code, self.code, self.message, self.details, self.request_id)
        return (type(self), args)


class WaitTimeout(TimeoutError):
    """``wait()`` ran out of time; the run goes on. ``run`` is its record as last seen."""

    def __init__(self, run: Any, timeout: float) -> None:
        self.run = run
        super().__init__(f"run {run.slug} still {run.status} after {timeout:g} s")
