"""Reading every item of a list endpoint, whichever ``offset`` means on the server.

Runyard reads ``offset`` as a row offset unless its operator set ``offset_mode=page``, and the
hosted service reads it as a page number. The reply tells them apart: ``page_index`` is
``offset // limit + 1`` for a row offset and ``offset`` itself for a page number. The pager asks
for row offsets (multiples of the page size), and if a reply shows page numbering it drops that
page and asks again by page number; on such an offset, equal indexes mean the same rows. It
stops at a short page, or once it has read as many items as the reply's ``count``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeVar

T = TypeVar("T")
OffsetMode = Literal["auto", "row", "page"]


class Pager:
    def __init__(self, limit: int = 100, mode: OffsetMode = "auto") -> None:
        if not 1 <= limit <= 100:
            raise ValueError("page size must be between 1 and 100")
        if mode not in ("auto", "row", "page"):
            raise ValueError("offset mode must be auto, row or page")
        self.limit = limit
        self.mode: OffsetMode = mode
        self.position = 0  # items read so far
        self.done = False

    def params(self) -> dict[str, int]:
        """The ``offset`` and ``limit`` of the next request."""
        if self.mode == "page":
            return {"offset": self.position // self.limit + 1, "limit": self.limit}
        return {"offset": self.position, "limit": self.limit}

    def take(
        self, items: Sequence[T], page_index: int, page_size: Any, count: int = 0
    ) -> Sequence[T] | None:
        """The items of a reply to yield, or None when the request must be sent again.

        ``count`` is the reply's total: once that many items are read there is no next page
        to ask for (0, or a server that leaves it out, changes nothing).
        """
        if self.position == 0 and isinstance(page_size, int) and 1 <= page_size < self.limit:
            self.limit = page_size  # the server caps lower than asked; follow it from page 1
        if self.mode == "auto" and self.position:
            row_index = self.position // self.limit + 1
            # When the row offset is also the page number (offset 2 with limit 2), both
            # readings name the same rows: take them, and tell the modes apart on a later page.
            if row_index != self.position:
                if page_index == self.position:
                    self.mode = "page"
                    return None
                if page_index == row_index:
                    self.mode = "row"
        self.position += len(items)
        if len(items) < self.limit or 0 < count <= self.position:
            self.done = True
        return items
