"""The ``offset``/``limit`` query of the list endpoints, as one dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from runyard.api.auth import services
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
