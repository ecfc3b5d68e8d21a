"""The ``offset``/``limit`` query of the list endpoints, as one dependency."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from runyard.api.auth import services
from runyard.api.envelope import JSONBytes, ok
from runyard.services import Window
from runyard.services.paging import MAX_OFFSET


def _window(
    request: Request,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Zero-based row offset")] = 0,
    limit: Annotated[int, Query(ge=1, description="Page size; capped at 100")] = 20,
) -> Window:
    return Window.from_query(offset, limit, services(request).settings.offset_mode)


#: A list endpoint's page: ``start`` and ``size`` to read, ``page_index`` to echo.
PageWindow = Annotated[Window, Depends(_window)]


def paged(
    request: Request, window: Window, count: int, items: Sequence[Any], key: str = "list"
) -> JSONBytes:
    """The reply of a list endpoint: ``{count, <key>: items, page_index, page_size}``."""
    return ok(
        request,
        {"count": count, key: items, "page_index": window.page_index, "page_size": window.size},
    )
