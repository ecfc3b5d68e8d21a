"""Pagination maths shared by every list endpoint (spec §1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MAX_LIMIT = 100
DEFAULT_LIMIT = 20


@dataclass(frozen=True)
class Window:
    """The rows ``start … start+size-1`` and what the reply echoes about them."""

    start: int
    size: int
    page_index: int

    @property
    def stop(self) -> int:
        return self.start + self.size

    @classmethod
    def from_query(cls, offset: int, limit: int, mode: Literal["row", "page"] = "row") -> Window:
        """``offset`` ≥ 0 and ``limit`` ≥ 1 are checked at the edge; ``limit`` is capped here."""
        size = min(limit, MAX_LIMIT)
        if mode == "page":
            page = max(offset, 1)
            return cls(start=(page - 1) * size, size=size, page_index=page)
        return cls(start=offset, size=size, page_index=offset // size + 1)
