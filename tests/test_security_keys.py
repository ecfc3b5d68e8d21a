"""Secrets are compared so that timing tells an attacker nothing.

No timing is measured here (a timed test flaps on a busy machine and proves little): each test
checks the *mechanism* instead, through the real server.

- API keys: the presented key never reaches the database or any comparison — only its
  SHA-256 hash does, looked up by an index. How long that lookup takes depends on the hash,
  which an attacker cannot steer toward a real key's without inverting SHA-256; the match is
  then confirmed with ``hmac.compare_digest``. A plain ``==`` on the key, or a lookup by the
  key itself, would show up as the key among the statement parameters.
- Link signatures, console sessions, CSRF tokens and callback signatures: the attacker
  chooses the presented value and the expected one is secret, so the comparison itself must
  be constant-time. ``hmac.compare_digest`` is wrapped and must see each of them; swapping it
  for ``==`` fails the test.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from runyard.services.accounts import hash_key
from runyard.services.callbacks import sign, verify_signature
from runyard.storage.rawquery import RawQuery
from tests.conftest import Server
from tests.console_helpers import csrf, signed_in
from tests.security_world import tenant

Compared = list[tuple[bytes | str, bytes | str]]


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> Compared:
    """Every pair ``hmac.compare_digest`` is given from now on (it still decides)."""
    seen: Compared = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return seen


@pytest.fixture
def statements(make_server: Callable[..., Server]) -> Iterator[tuple[Server, list[str]]]:
    """A server, and the parameters of every statement it sends its database (as text)."""
    server = make_server()
    params: list[str] = []

    def record(_conn: Any, _cursor: Any, _sql: str, parameters: Any, *_: Any) -> None:
        params.append(repr(parameters))

    event.listen(server.services.db.engine, "before_cursor_execute", record)
    real_all = RawQuery.all

    def raw_all(self: RawQuery, **values: Any) -> list[tuple[Any, ...]]:
        params.append(repr(values))  # the hot path's reads bypass the engine's events
        return real_all(self, **values)

    RawQuery.all = raw_all  # type: ignore[method-assign]
    try:
        yield server, params
    finally:
        RawQuery.all = real_all  # type: ignore[method-assign]
        event.remove(server.services.db.engine, "before_cursor_execute", record)


def test_a_key_reaches_the_database_only_as_its_hash(
    statements: tuple[Server, list[str]], compared: Compared
) -> None:
    server, params = statements
    user = server.user()
    wrong = "ry_" + "x" * 43
    params.clear()
    api = f"{server.url}/api/v2/users/account"
    assert httpx.get(api, headers={"Authorization": f"Bearer {user.key}"}).status_code == 200
    assert httpx.get(api, headers={"api-key": user.key}).status_code == 200
    assert httpx.get(api, params={"token": user.key}).status_code == 200
    assert httpx.get(api, params={"token": wrong}).status_code == 401
    console = signed_in(server, user)  # the sign-in form checks the key too
    assert console.get("/runs").status_code == 200

    sent = "\n".join(params)
    assert hash_key(user.key) in sent and hash_key(wrong) in sent
    assert user.key not in sent and wrong not in sent
    # ...and the stored hash was confirmed with a constant-time comparison.
    assert (hash_key(user.key), hash_key(user.key)) in compared


def test_link_signatures_are_compared_in_constant_time(
    make_server: Callable[..., Server], compared: Compared
) -> None:
    server = make_server()
    a = tenant(server, owner=False)
    for url in (a.export_url, a.log_url):
        signature = httpx.URL(url).params["signature"]
        compared.clear()
        assert httpx.get(url).status_code == 200
        assert any(b == signature.encode() for _, b in compared)
        forged = signature[:-4] + "0000"
        compared.clear()
        assert httpx.get(url.replace(signature, forged)).status_code == 404
        assert any(b == forged.encode() for _, b in compared)


def test_console_sessions_and_csrf_tokens_are_compared_in_constant_time(
    make_server: Callable[..., Server], compared: Compared
) -> None:
    server = make_server()
    user = server.user()
    console = signed_in(server, user)
    cookie = console.cookies["runyard_session"]
    compared.clear()
    page = console.get("/runs")
    assert page.status_code == 200
    assert any(b == cookie.rpartition(".")[2].encode() for _, b in compared)
    token = csrf(page.text)
    compared.clear()
    assert console.post("/sign-out", data={"csrf": token}).status_code == 303
    assert any(b == token.encode() for _, b in compared)


def test_callback_signatures_are_compared_in_constant_time(compared: Compared) -> None:
    body = b'{"run_status":"succeeded"}'
    header = sign("s3cret", body, timestamp=int(time.time()))
    assert verify_signature("s3cret", header, body)
    presented = header.partition("v1=")[2]
    assert any(b == presented for _, b in compared)
