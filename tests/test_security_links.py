"""Signed links and the file endpoint: what a link holder can and cannot reach.

``tests/test_api_export.py`` already covers export links with a tampered name, filename,
signature or expiry, no signature, garbage parameters and an expired link; and
``tests/test_console.py`` tampered, expired and revoked console sessions. This file adds the
rest: log links, links and sessions made with another server's key, one kind of signature
passed off as another, path traversal in every spelling, and files that are not what they
should be on disk (symlinks).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import os
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from runyard.console.session import SESSION_COOKIE, SessionSigner
from runyard.services.accounts import hash_key
from tests.conftest import Server
from tests.security_world import tenant

SECRET = "s" * 40
OTHER_SECRET = "o" * 40


def parts(url: str) -> tuple[str, str, int, str]:
    """``(name, filename, expires, signature)`` of a signed link."""
    split = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(split.query).items()}
    _, name, filename = split.path.rsplit("/", 2)
    return name, filename, int(query["expires"]), query["signature"]


def raw_get(server: Server, target: str) -> tuple[int, bytes]:
    """A GET of ``target`` exactly as written: no client-side normalising of ``..`` or
    percent escapes, the way an attacker's own tool sends it."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        conn.endheaders()
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    return make_server(secret_key=SECRET)


def refused(reply: httpx.Response) -> None:
    assert reply.status_code == 404, reply.text
    assert reply.json()["code"] == 11004


# --- log links --------------------------------------------------------------------------------


def test_log_links_refuse_every_tampering(server: Server) -> None:
    a = tenant(server, owner=False)
    other = tenant(server, owner=False)
    assert httpx.get(a.log_url).status_code == 200
    assert "run succeeded" in httpx.get(a.log_url).text
    name, filename, expires, signature = parts(a.log_url)
    other_name = parts(other.log_url)[0]
    base = f"{server.url}/api/v2/files"
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    cases: list[tuple[str, dict[str, str | int]]] = [
        (f"{name}/{filename}", {"expires": expires, "signature": flipped}),
        (f"{name}/{filename}", {"expires": expires + 1, "signature": signature}),
        (f"{name}/{filename}", {"expires": expires - 1, "signature": signature}),
        (f"{other_name}/{filename}", {"expires": expires, "signature": signature}),  # B's log
        (f"{name}/other.log", {"expires": expires, "signature": signature}),
        (f"{name}/{filename}", {"expires": expires}),
        (f"{name}/{filename}", {"expires": expires, "signature": signature.upper()}),
        (f"{name}/{filename}", {"expires": expires, "signature": signature[:32]}),
        (f"{name}/{filename}", {"expires": expires, "signature": signature + "00"}),
    ]
    for path, query in cases:
        refused(httpx.get(f"{base}/{path}", params=query))


def test_an_expired_log_link_is_refused(server: Server) -> None:
    a = tenant(server, owner=False)
    name, filename, _, _ = parts(a.log_url)
    signer = server.services.signer
    past = int(time.time()) - 1
    refused(httpx.get(signer.url(server.url, name, filename, expires=past)))
    # The same link a moment before its expiry still works: the refusal is the expiry's.
    assert httpx.get(signer.url(server.url, name, filename, expires=past + 60)).status_code == 200


def test_links_carry_the_configured_ttl(make_server: Callable[..., Server]) -> None:
    server = make_server(link_ttl_seconds=60)
    a = tenant(server, owner=False)
    signer = server.services.signer
    for url in (a.export_url, a.log_url):
        name, filename, expires, _ = parts(url)
        assert abs(expires - (time.time() + 60)) < 15
        assert httpx.get(url).status_code == 200
        # The same link, a second past its end.
        refused(httpx.get(signer.url(server.url, name, filename, expires=int(time.time()) - 1)))


# --- keys of other servers, signatures of other kinds -------------------------------------


def test_links_signed_with_another_servers_key_are_refused(
    make_server: Callable[..., Server],
) -> None:
    ours = make_server(secret_key=SECRET)
    theirs = make_server(secret_key=OTHER_SECRET)
    a = tenant(ours, owner=False)
    forger = theirs.services.signer  # a real signer, with a key that is not ours
    for url in (a.export_url, a.log_url):
        name, filename, expires, _ = parts(url)
        assert httpx.get(url).status_code == 200
        refused(httpx.get(forger.url(ours.url, name, filename, expires=expires)))


def test_a_session_signature_is_no_link_and_a_link_is_no_session(server: Server) -> None:
    a = tenant(server, owner=False)
    name, filename, expires, _ = parts(a.export_url)
    sessions = SessionSigner(SECRET.encode(), 3600)
    cookie = sessions.issue(hash_key(a.user.key))
    refused(
        httpx.get(
            f"{server.url}/api/v2/files/{name}/{filename}",
            params={"expires": expires, "signature": cookie.rpartition(".")[2]},
        )
    )
    # And a cookie signed with the key links are signed with (the secret itself, where
    # sessions use a key derived from it) is no session.
    body = cookie.rpartition(".")[0]
    raw = hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).digest()
    forged = f"{body}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}"
    browser = httpx.Client(base_url=server.url, follow_redirects=False)
    with browser:
        browser.cookies.set(SESSION_COOKIE, forged)
        assert browser.get("/runs").status_code == 303
        browser.cookies.set(SESSION_COOKIE, cookie)
        assert browser.get("/runs").status_code == 200


def test_sessions_signed_with_another_servers_key_are_refused(server: Server) -> None:
    user = server.user()
    theirs = SessionSigner(OTHER_SECRET.encode(), 3600).issue(hash_key(user.key))
    browser = httpx.Client(base_url=server.url, follow_redirects=False)
    with browser:
        browser.cookies.set(SESSION_COOKIE, theirs)
        assert browser.get("/runs").status_code == 303
        # Issued in the future, past the allowed clock skew: refused too.
        ours = SessionSigner(SECRET.encode(), 3600)
        browser.cookies.set(SESSION_COOKIE, ours.issue(hash_key(user.key), now=time.time() + 600))
        assert browser.get("/runs").status_code == 303
        # Ours, issued now, works: the refusals above are the key's and the clock's.
        browser.cookies.set(SESSION_COOKIE, ours.issue(hash_key(user.key)))
        assert browser.get("/runs").status_code == 200


# --- path traversal -----------------------------------------------------------------------


TRAVERSALS = [
    "/api/v2/files/../../secret.key",
    "/api/v2/files/..%2f..%2fsecret.key/x",
    "/api/v2/files/%2e%2e/secret.key",
    "/api/v2/files/%2e%2e/%2e%2e",
    "/api/v2/files/..%5c..%5csecret.key/x",
    "/api/v2/files/..\\..\\secret.key/x",
    "/api/v2/files/%2fetc%2fpasswd/x",
    "/api/v2/files//etc/passwd",
    "/api/v2/files/x/%2fetc%2fpasswd",
    "/api/v2/files/x/..%2f..%2fsecret.key",
    "/api/v2/files/secret.key%00/x",
    "/api/v2/files/x/secret.key%00.csv",
    "/api/v2/files/log-..%2f..%2fsecret.key/x",
    "/api/v2/files/.secret/x",
    "/api/v2/files/../runyard.db/x",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_path_traversal_is_refused(make_server: Callable[..., Server], target: str) -> None:
    server = make_server()  # its key is a file in the data directory
    server.run(server.user(), [{"a": 1}])
    secret = server.services.settings.resolved_secret_key()
    for query in ("", "?expires=99999999999&signature=" + "0" * 64):
        status, body = raw_get(server, target + query)
        assert status in (400, 404), (target, status, body[:200])
        assert secret not in body and b"SQLite format" not in body and b"root:" not in body


def test_traversal_in_a_validly_signed_link_reaches_no_file(server: Server) -> None:
    """Even with the signing key, the URL names no file on disk: the export's record does.
    The name is a database key and the filename only the download's suggested name."""
    a = tenant(server, owner=False)
    signer = server.services.signer
    expires = signer.expiry()
    name, filename, _, _ = parts(a.export_url)
    for forged_name in ("../secret.key", "..", "/etc/passwd", "log-../../runyard.db", "x\x00"):
        url = signer.url(server.url, forged_name, filename, expires=expires)
        status, body = raw_get(server, url.removeprefix(server.url))
        # A NUL is refused as the API refuses one anywhere (422 / 11000), the rest as unknown.
        assert status in (404, 422), (forged_name, status)
        assert SECRET.encode() not in body and b"SQLite format" not in body
    # A filename with a slash cannot even be routed; a hostile one without changes only
    # the name the browser is offered, quoted: no header of its own, no path.
    url = signer.url(server.url, name, "../../etc/passwd", expires=expires)
    refused(httpx.get(url))
    for hostile in ("..\\..\\boot.ini", 'a"; filename=evil.exe', "x\r\nSet-Cookie: a=b"):
        reply = httpx.get(signer.url(server.url, name, hostile, expires=expires))
        assert reply.status_code == 200
        assert reply.content == httpx.get(a.export_url).content
        assert "set-cookie" not in reply.headers
        disposition = reply.headers["content-disposition"]
        assert disposition.startswith("attachment; filename*=utf-8''")
        value = disposition.removeprefix("attachment; filename*=utf-8''")
        assert value.isascii() and not set(value) & set('"\\/; \r\n'), disposition


def test_a_symlink_in_the_files_directory_is_not_followed(server: Server, tmp_path: Path) -> None:
    """An export file swapped for a link to something outside ``files/`` (by anything that
    can write there) is refused, not served."""
    a = tenant(server, owner=False)
    assert httpx.get(a.export_url).status_code == 200
    files = server.services.settings.files_dir
    name = parts(a.export_url)[0]
    [stored] = [p for p in files.iterdir() if p.name.startswith(name)]
    outside = tmp_path / "outside.txt"
    outside.write_text("not for download\n")
    stored.unlink()
    os.symlink(outside, stored)
    reply = httpx.get(a.export_url)
    assert b"not for download" not in reply.content
    refused(reply)
    assert httpx.head(a.export_url).status_code == 404
    # A link to a file inside the directory is refused the same: no symlink is ever served.
    inside = files / "inside.csv"
    inside.write_text("a\n")
    stored.unlink()
    os.symlink(inside, stored)
    refused(httpx.get(a.export_url))


def test_a_file_swapped_for_a_symlink_after_the_check_is_not_served(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The swap lands between the route's check of the path and its open: what is served is
    what was opened, never the path opened again."""
    from runyard.api.routes import files as route

    a = tenant(server, owner=False)
    name = parts(a.export_url)[0]
    # The file is written in the background: a first download waits until it is there.
    assert httpx.get(a.export_url).status_code == 200
    [stored] = [p for p in server.services.settings.files_dir.iterdir() if p.name.startswith(name)]
    outside = tmp_path / "outside.txt"
    outside.write_text("not for download\n")
    checked = route._inside

    def check_then_swap(path: Path, root: Path) -> bool:
        ok = checked(path, root)
        if path == stored and not stored.is_symlink():
            stored.unlink()
            os.symlink(outside, stored)
        return ok

    monkeypatch.setattr(route, "_inside", check_then_swap)
    reply = httpx.get(a.export_url)
    assert b"not for download" not in reply.content
    refused(reply)


def test_file_names_in_the_url_are_quoted_in_links(server: Server) -> None:
    """What the signer puts in a link is escaped: no name it signs can add path segments."""
    url = server.services.signer.url("http://h", "a/../b", "c?d#e", expires=1)
    path = urlsplit(url).path
    assert path == f"/api/v2/files/{quote('a/../b', safe='')}/{quote('c?d#e', safe='')}"
