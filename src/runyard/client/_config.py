"""Where the client connects and with which key: arguments first, then the environment."""

from __future__ import annotations

import os

import httpx

from runyard import __version__

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
API_PREFIX = "/api/v2"
USER_AGENT = f"runyard-client/{__version__}"


def base_url(given: str | None) -> str:
    """The API root, ``…/api/v2``: a server's address works as well as its API's."""
    url = (given or os.environ.get("RUNYARD_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"base URL must start with http:// or https://, not {url!r}")
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL as exc:
        raise ValueError(f"base URL {url!r} is not a valid URL: {exc}") from None
    if not host:
        raise ValueError(f"base URL {url!r} names no host")
    return url if url.endswith(API_PREFIX) else url + API_PREFIX


def api_key(given: str | None) -> str | None:
    """The key, without the surrounding whitespace a file or a paste adds."""
    key = (given or os.environ.get("RUNYARD_API_KEY") or "").strip()
    # Refused here, not by the HTTP library, whose error would quote the whole header.
    if not all(" " < c < "\x7f" for c in key):
        raise ValueError("the API key holds spaces or characters an HTTP header cannot carry")
    return key or None
