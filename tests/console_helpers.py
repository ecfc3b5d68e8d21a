"""Using the console like a browser does: cookies kept, CSRF tokens read off each page."""

from __future__ import annotations

import re

import httpx

from tests.conftest import Server, User

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def browser(server: Server) -> httpx.Client:
    """A signed-out browser: keeps cookies, does not follow redirects (tests check them)."""
    return httpx.Client(base_url=server.url, timeout=60, follow_redirects=False)


def sign_in(client: httpx.Client, user: User) -> httpx.Client:
    resp = client.post(
        "/sign-in", data={"csrf": csrf(client.get("/sign-in").text), "api_key": user.key}
    )
    assert resp.status_code == 303, resp.text
    return client


def signed_in(server: Server, user: User) -> httpx.Client:
    return sign_in(browser(server), user)
