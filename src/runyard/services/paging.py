"""Pagination maths shared by every list endpoint (spec §1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MAX_LIMIT = 100
DEFAULT_LIMIT = 20


#: The largest row offset ever read; a larger one simply reads past the end.
MAX_OFFSET = 2**62


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
            return cls(start=min((page - 1) * size, MAX_OFFSET), size=size, page_index=page)
        # Past any real row count, and inside what every database's integer holds.
        return cls(start=min(offset, MAX_OFFSET), size=size, page_index=offset // size + 1)
