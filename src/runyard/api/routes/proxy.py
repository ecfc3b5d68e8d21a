"""Proxy regions (spec §4): public, so a client can fill a region picker without a key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from runyard.api.auth import services
from runyard.api.envelope import JSONBytes, ok
from runyard.api.schemas import ProxyRegionList, responses
from runyard.services.proxies import region_list

router = APIRouter(tags=["proxies"])


@router.get(
    "/proxy/region",
    summary="List proxy regions (public)",
    response_class=JSONBytes,
    responses=responses(ProxyRegionList, public=True),
)
def list_regions(
    request: Request,
    language: Annotated[str | None, Query(description="Language of the names, e.g. en")] = None,
) -> JSONBytes:
    return ok(request, {"list": region_list(services(request).settings.proxies, language)})
