"""Pagination maths shared by every list endpoint (spec §1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVarTuple

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import Session

Ts = TypeVarTuple("Ts")

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


def fetch_page(
    s: Session, query: Select[*Ts], order: Sequence[Any], offset: int, limit: int
) -> tuple[int, Sequence[Row[*Ts]]]:
    """A list endpoint's rows: how many ``query`` matches, and one page of them in ``order``.

    (SQL ``OFFSET`` is fine here: these lists are a user's workers, runs or tasks, not rows.)
    """
    count = s.scalar(select(func.count()).select_from(query.subquery())) or 0
    return count, s.execute(query.order_by(*order).offset(offset).limit(limit)).all()
