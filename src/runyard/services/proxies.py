"""Proxy regions as ``GET /proxy/region`` lists them (spec §4)."""

from __future__ import annotations

from collections.abc import Mapping

from runyard.settings import ProxyRegion

#: The name shown when the asked language has none.
FALLBACK_LANGUAGE = "en"


def region_name(region: ProxyRegion, language: str | None) -> str:
    """The region's name in ``language``, else in English, else its first one."""
    if isinstance(region.name, str):
        return region.name
    names = region.name
    for wanted in (language, FALLBACK_LANGUAGE):
        if wanted and wanted in names:
            return names[wanted]
    return next(iter(names.values()), "")


def region_list(proxies: Mapping[str, ProxyRegion], language: str | None) -> list[dict[str, str]]:
    """``[{code, name}]`` in configuration order; the URLs (with credentials) stay private."""
    return [{"code": code, "name": region_name(r, language)} for code, r in proxies.items()]
