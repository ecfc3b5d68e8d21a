"""No API key — and no link signature — is ever written down: a real ``runyard serve`` is
sent keys every way a client can send them, with every kind of outcome, and then neither its
output nor any file under its data directory holds one.

``tests/test_logs.py`` checks the access-log redaction in process; here it is the whole server,
as deployed: uvicorn's own logging, the 500 handler's traceback, the console's redirects.
"""

from __future__ import annotations

import secrets
import socket
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from pydantic import SecretStr

from runyard.api.logs import redact, redact_query
from runyard.console.session import SessionSigner
from runyard.services import Services
from runyard.services.accounts import hash_key
from runyard.services.packages import load_package
from runyard.settings import Settings
from tests.console_helpers import csrf
from tests.served import Served

QUICK = 'from runyard import sdk\nsdk.log("hello")\nsdk.push({"a": 1})\n'


def _install(tmp_path: Path) -> tuple[Path, str, str]:
    """A data directory with users alice and bob, a worker and a finished run of alice's;
    the directory and both keys."""
    data_dir = tmp_path / "data"
    package = tmp_path / "w"
    package.mkdir()
    (package / "main.py").write_text(QUICK)
    (package / "input_schema.json").write_text('{"properties": []}')
    (package / "output_schema.json").write_text("[]")
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"a": 1}\n{"a": 2}\n')
    svc = Services(Settings(data_dir=data_dir))
    try:
        alice = svc.accounts.create_user("alice")
        svc.accounts.create_user("bob")
        svc.workers.register(alice, load_package(package))
        svc.imports.run(rows, user_id=alice, worker_slug="w")
        return data_dir, svc.accounts.create_key("alice"), svc.accounts.create_key("bob")
    finally:
        svc.close()


def raw(url: str, data: bytes) -> bytes:
    """Send ``data`` as is on a fresh connection; what comes back."""
    split = urlsplit(url)
    with socket.create_connection((split.hostname or "", split.port or 80), timeout=10) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except OSError:
            pass
        return b"".join(chunks)


def test_no_key_or_signature_reaches_the_output_or_the_data_directory(tmp_path: Path) -> None:
    data_dir, key, bob = _install(tmp_path)
    wrong = [f"ry_{secrets.token_urlsafe(32)}" for _ in range(4)]
    served = Served(
        data_dir,
        # A burst big enough for alice's requests below; bob's flood goes past it.
        env={
            "RUNYARD_RATE_LIMIT": "1",
            "RUNYARD_RATE_BURST": "150",
            "RUNYARD_MAX_BODY_BYTES": "2048",
        },
        output=tmp_path,
    )
    statuses: dict[str, int] = {}
    secrets_seen: list[str] = [key, bob, *wrong]
    try:
        api = f"{served.url}/api/v2"
        with httpx.Client(timeout=30) as c:

            def got(what: str, reply: httpx.Response) -> httpx.Response:
                statuses[what] = reply.status_code
                return reply

            # ?token= with every outcome the API has.
            got("200", c.get(f"{api}/worker-runs/last/result", params={"token": key}))
            got("404", c.get(f"{api}/worker-runs/01ARZ3NDEKTSV4RRFFQ69G5FAV?token={key}"))
            got("422", c.get(f"{api}/worker-runs/last/result?limit=0&token={key}"))
            got("401", c.get(f"{api}/worker-runs", params={"token": wrong[0]}))
            got("401 spelled", c.get(f"{api}/worker-runs?%74oken={wrong[1]}&TOKEN={key}"))
            got(
                "400",
                c.post(
                    f"{api}/workers/w/runs?token={key}",
                    content=b"{not json",
                    headers={"Content-Type": "application/json"},
                ),
            )
            got("413", c.post(f"{api}/workers/w/runs?token={key}", content=b"x" * 5000))
            got("401 public", c.get(f"{api}/workers/w/input-schema?token={wrong[2]}"))
            # Headers, right and wrong.
            got("bearer", c.get(f"{api}/users/account", headers={"Authorization": f"Bearer {key}"}))
            got("bearer 401", c.get(f"{api}/users/account", headers={"Authorization": wrong[3]}))
            got("api-key", c.get(f"{api}/users/account", headers={"api-key": key}))
            got("api-key 401", c.get(f"{api}/users/account", headers={"api-key": wrong[0]}))
            # Links: the export file and the log, and a tampered one.
            link = got("export", c.get(f"{api}/worker-runs/last/export?token={key}"))
            export_url = link.json()["data"]["download_url"]
            log_url = c.get(f"{api}/worker-runs/last/log?token={key}").json()["data"]
            log_url = log_url["all_logs_url"]
            for url in (export_url, log_url):
                signature = parse_qs(urlsplit(url).query)["signature"][0]
                secrets_seen.append(signature)
                got(f"download {url[-20:]}", c.get(url))
                got(f"head {url[-20:]}", c.head(url))
                tampered = url.replace(signature, signature[::-1])
                got(f"tampered {url[-20:]}", c.get(tampered))
            # A request head the server cannot parse, and one too large, both with the key.
            head = f"GET /api/v2/store?token={key} HTTP/1.1\r\nno colon\r\n\r\n"
            garbage = raw(served.url, head.encode())
            statuses["garbage"] = int(garbage.split()[1]) if garbage else 0
            head = f"GET /api/v2/worker-runs?token={key}&pad={'x' * 100_000} HTTP/1.1\r\n\r\n"
            big = raw(served.url, head.encode())
            statuses["too big"] = int(big.split()[1]) if big else 0

        # The console: a tokenized address goes to sign-in without its token, and back.
        with httpx.Client(base_url=served.url, timeout=30, follow_redirects=True) as browser:
            page = got("console", browser.get(f"/runs?status=failed&token={key}&TOKEN={key}"))
            assert page.url.path == "/sign-in"
            next_path = page.url.params["next"]
            assert next_path == "/runs?status=failed" and key not in page.text
            # A sign-in link made by hand, with the key inside its ``next``, encoded or not.
            for crafted in (f"/runs?token={key}", f"/runs%3Ftoken%3D{key}"):
                got(f"crafted {crafted[:6]}", browser.get("/sign-in", params={"next": crafted}))
            got(
                "sign-in 401",
                browser.post(
                    "/sign-in",
                    data={"csrf": csrf(page.text), "api_key": wrong[1], "next": next_path},
                ),
            )
            page = browser.get("/sign-in", params={"next": next_path})
            signed = got(
                "sign-in",
                browser.post(
                    "/sign-in", data={"csrf": csrf(page.text), "api_key": key, "next": next_path}
                ),
            )
            assert signed.url.path == "/runs" and signed.status_code == 200
            got("console ?token=", browser.get(f"/runs/last?token={key}"))

        # A fault with a key in the address: the run table goes missing under the server.
        db = sqlite3.connect(data_dir / "runyard.db", timeout=30)
        try:
            db.execute("ALTER TABLE tasks RENAME TO tasks_gone")
            db.commit()
            got("500", httpx.get(f"{api}/worker-tasks?token={key}", timeout=30))
            db.execute("ALTER TABLE tasks_gone RENAME TO tasks")
            db.commit()
        finally:
            db.close()

        # Bob floods past his burst: the 429s are logged too.
        with httpx.Client(timeout=30) as c:
            for _ in range(170):
                reply = c.get(f"{api}/users/account?token={bob}")
                statuses["429"] = reply.status_code
                if reply.status_code == 429:
                    break
    finally:
        output = served.stop()

    assert statuses["200"] == 200 and statuses["404"] == 404 and statuses["422"] == 422
    assert statuses["401"] == statuses["401 spelled"] == statuses["401 public"] == 401
    assert statuses["400"] == 400 and statuses["413"] == 413 and statuses["500"] == 500
    assert statuses["bearer"] == statuses["api-key"] == 200 == statuses["export"]
    assert statuses["bearer 401"] == statuses["api-key 401"] == 401
    assert statuses["429"] == 429 and statuses["sign-in"] == 200
    assert statuses["garbage"] == 400 and 400 <= statuses["too big"] < 500
    assert sorted(v for k, v in statuses.items() if k.startswith("tampered")) == [404, 404]
    assert "no such table" in output  # the 500's traceback was logged...
    for status in (" 200 ", " 401 ", " 404 ", " 422 ", " 429 ", " 500 ", " 303 "):
        assert status in output, status  # ...and every outcome has its access-log line
    assert "token=[redacted]" in output and "signature=[redacted]" in output

    for secret in secrets_seen:
        assert secret not in output, f"{secret[:6]}… was written to the server's output"
    stored = b"".join(p.read_bytes() for p in data_dir.rglob("*") if p.is_file())
    for secret in (key, bob, *wrong):
        assert secret.encode() not in stored, f"{secret[:6]}… is stored in the data directory"
    assert hash_key(key).encode() in stored  # what is kept instead: its hash


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # The console's sign-in redirect carries the address asked for, encoded once or more:
        # logged decoded, with the secret redacted.
        ("next=%2Fruns%3Ftoken%3Dry_secret", "next=/runs?token=[redacted]"),
        ("next=%252Fruns%253Ftoken%253Dry_secret", "next=/runs?token=[redacted]"),
        ("next=/runs?token=ry_secret&x=1", "next=/runs?token=[redacted]&x=1"),
        ("next=%2Fx%3Fa%3D1%26Signature%3Dabc&y=2", "next=/x?a=1&Signature=[redacted]&y=2"),
        ("next=%2Fx%3F%2574oken%3Dry_secret", "next=/x?token=[redacted]"),
        ("next=%2Fruns%3Fx%3D%22%20token%3Dry", "next=/runs?x=%22%20token=[redacted]"),
        # Nothing secret: left exactly as it came.
        ("next=%2Fruns%3Flimit%3D5", "next=%2Fruns%3Flimit%3D5"),
        ("q=tokens%3Dx&r=mytoken%3Dy", "q=tokens%3Dx&r=mytoken%3Dy"),
        ("offset=0&limit=20", "offset=0&limit=20"),
    ],
)
def test_secrets_nested_in_other_parameters_are_redacted(query: str, expected: str) -> None:
    assert redact_query(query) == expected


def test_free_text_redaction() -> None:
    assert redact("GET /a?token=ry_x&b=1 and /b?x=1&signature=ab") == (
        "GET /a?token=[redacted]&b=1 and /b?x=1&signature=[redacted]"
    )
    assert redact("/sign-in?next=%2Fruns%3Ftoken%3Dry_x%26y%3D1") == (
        "/sign-in?next=%2Fruns%3Ftoken%3D[redacted]%26y%3D1"
    )
    assert redact("/sign-in?next=%252Fr%253FTOKEN%253Dry_x") == (
        "/sign-in?next=%252Fr%253FTOKEN%253D[redacted]"
    )
    assert redact("tokens=1 mytoken=2") == "tokens=1 mytoken=2"


def test_settings_and_signers_keep_their_secrets_out_of_repr(tmp_path: Path) -> None:
    secret = "k" * 40
    password = "pw-" + secrets.token_hex(8)
    settings = Settings(
        data_dir=tmp_path,
        secret_key=SecretStr(secret),
        database_url=SecretStr(f"postgresql://runyard:{password}@db.internal/runyard"),
        broker_url=SecretStr(f"redis://:{password}@redis.internal:6379/0"),
    )
    shown: list[Any] = [settings, settings.model_dump(), settings.model_dump_json()]
    local = Settings(data_dir=tmp_path, secret_key=SecretStr(secret))
    svc = Services(local)
    try:
        key = svc.accounts.create_key(svc_user(svc))
        shown += [svc, svc.signer, svc.accounts, SessionSigner(secret.encode(), 60), local]
        shown += [svc.accounts.list_keys()]
        for thing in shown:
            text = repr(thing) + str(thing)
            assert secret not in text and password not in text and key not in text, text[:300]
        assert orjson.dumps(settings.model_dump(mode="json")).find(secret.encode()) == -1
    finally:
        svc.close()


def svc_user(svc: Services) -> str:
    svc.accounts.create_user("carol")
    return "carol"
