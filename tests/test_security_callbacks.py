"""The callback SSRF guard, attacked: address spellings, DNS rebinding, redirects, proxies.

``tests/test_callbacks.py`` covers the basic ranges (10/8, 127/8, 169.254/16, ::1, mapped
127.0.0.1, 0.0.0.0, localhost), non-http schemes, hosts that do not resolve, a plain redirect
not followed and the re-check at delivery. This file adds the spellings that parse into those
ranges, names that resolve into them (at check time or only later), redirects and proxies
that would carry a request past the check, and the API refusing such URLs.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from runyard.services import callbacks as callbacks_module
from runyard.services.callbacks import Callbacks, check_callback_url
from runyard.services.errors import InvalidInput
from runyard.storage import Database
from tests.callback_helpers import (  # noqa: F401 (fixtures)
    PAYLOAD,
    Receiver,
    db_fixture,
    delivery,
    make_run,
    receivers_fixture,
    senders_fixture,
)
from tests.conftest import Server
from tests.security_world import wait_status

REFUSED_SPELLINGS = [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),  # cloud metadata
    ("http://[fd00::1]/", "private"),  # IPv6 unique local
    ("http://[fc00::1]/", "private"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[::]/", "unspecified"),
    ("http://[::127.0.0.1]/", "reserved"),  # IPv4-compatible
    ("http://[::ffff:7f00:1]/", "loopback"),  # mapped, in hex
    ("http://[::ffff:169.254.169.254]/", "link-local"),
    ("http://[64:ff9b::7f00:1]/", "loopback"),  # NAT64
    ("http://[2002:7f00:1::]/", "loopback"),  # 6to4
    ("http://2130706433/", "loopback"),  # 127.0.0.1 as one decimal number
    ("http://0x7f000001/", "loopback"),  # ...in hex
    ("http://017700000001/", "loopback"),  # ...in octal
    ("http://0x7f.0.0.1/", "loopback"),
    ("http://0177.1/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://0/", "unspecified"),
    ("http://100.64.0.1/", "non-public"),  # carrier-grade NAT
    ("http://192.168.1.1/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://224.0.0.1/", "multicast"),
    ("http://user:pw@127.0.0.1/", "loopback"),
    ("http://example.com@127.0.0.1/", "loopback"),
    ("http://127.0.0.1#@example.com/", "loopback"),
    ("HTTP://LOCALHOST:8000/", "loopback"),
    ("http://127\u30020\u30020\u30021/", "loopback"),  # ideographic full stops
    ("http://[::1]:80/", "loopback"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_SPELLINGS)
def test_every_spelling_of_an_inside_address_is_refused(url: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_callback_url(url, allow_private=False)
    assert refused.value.details is not None
    assert reason in refused.value.details[0], refused.value.details
    check_callback_url(url, allow_private=True)  # the operator's switch turns the guard off


@pytest.mark.parametrize(
    "url",
    [
        "gopher://127.0.0.1/",
        "dict://127.0.0.1:11211/",
        "javascript:alert(1)",
        "//127.0.0.1/",
        "http:/127.0.0.1/",
        "http://①②⑦.0.0.1/",
        "http://0177.0.0.1/",  # refused as malformed by the parser that also sends
        "http://x/" + "a" * 3000,
    ],
)
def test_other_schemes_and_malformed_urls_are_refused_even_when_allowed(url: str) -> None:
    for allow_private in (False, True):
        with pytest.raises(InvalidInput):
            check_callback_url(url, allow_private=allow_private)


# --- names: resolved at delivery, connected to as resolved -----------------------------------


class Resolver:
    """``socket.getaddrinfo`` with made-up names: each answers from its list of addresses, one
    per call (the last repeats), as a rebinding DNS server would."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: dict[str, list[list[str]]] = {}
        self.asked: dict[str, int] = {}
        real = socket.getaddrinfo

        def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else host
            if name not in self.names:
                return real(host, port, *args, **kwargs)
            answers = self.names[name]
            count = self.asked.get(name, 0)
            self.asked[name] = count + 1
            addresses = answers[min(count, len(answers) - 1)]
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port),
                )
                for a in addresses
            ]

        monkeypatch.setattr(socket, "getaddrinfo", fake)

    def add(self, name: str, *answers: list[str]) -> None:
        self.names[name] = list(answers)


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    return Resolver(monkeypatch)


def url_for(receiver: Receiver, host: str) -> str:
    return receiver.url.replace("127.0.0.1", host)


def test_a_name_that_rebinds_to_loopback_after_the_check_is_refused_at_delivery(
    db: Database,
    senders: Callable[..., Callbacks],
    receivers: Callable[..., Receiver],
    resolver: Resolver,
) -> None:
    receiver = receivers(200)
    # Public when the run is started (the URL is checked), loopback when it is delivered.
    resolver.add("rebind.test", ["93.184.216.34"], ["127.0.0.1"])
    url = url_for(receiver, "rebind.test")
    check_callback_url(url, allow_private=False)
    callbacks = senders(allow_private=False, max_attempts=2)
    delivery_id = callbacks.enqueue(make_run(db).id, url, PAYLOAD)

    callbacks.deliver_due()

    assert receiver.requests == []
    record = delivery(db, delivery_id)
    assert record.status == "pending" and "resolves to 127.0.0.1" in (record.last_error or "")


def test_the_connection_goes_to_the_address_that_was_checked(
    db: Database,
    senders: Callable[..., Callbacks],
    receivers: Callable[..., Receiver],
    resolver: Resolver,
) -> None:
    """Resolved once, at delivery: the request is sent to that address, with the name as
    ``Host``. A second resolution (the HTTP client's own) would get a black hole here."""
    receiver = receivers(200)
    resolver.add("once.test", ["127.0.0.1"], ["192.0.2.1"])  # TEST-NET-1: nothing answers
    callbacks = senders(allow_private=True, timeout_seconds=3.0)
    url = url_for(receiver, "once.test")
    delivery_id = callbacks.enqueue(make_run(db).id, url, PAYLOAD)

    callbacks.deliver_due()

    assert delivery(db, delivery_id).status == "delivered"
    assert resolver.asked["once.test"] == 1
    assert receiver.requests[0].headers["Host"] == url.split("/")[2]


def test_a_name_with_any_inside_address_is_refused_whole(
    db: Database,
    senders: Callable[..., Callbacks],
    receivers: Callable[..., Receiver],
    resolver: Resolver,
) -> None:
    receiver = receivers(200)
    resolver.add("mixed.test", ["93.184.216.34", "10.0.0.5"])
    url = url_for(receiver, "mixed.test")
    with pytest.raises(InvalidInput, match="invalid callback_url") as refused:
        check_callback_url(url, allow_private=False)
    assert refused.value.details and "10.0.0.5" in refused.value.details[0]
    resolver.add("v6.test", ["2606:4700::1111", "fd12::1"])
    with pytest.raises(InvalidInput):
        check_callback_url(url_for(receiver, "v6.test"), allow_private=False)


# --- redirects and proxies -----------------------------------------------------------------


class Catcher:
    """An HTTP server on 127.0.0.2 that notes every request it gets (any method, proxy
    requests included): the inside address a redirect or a proxy would lead to."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                catcher.requests.append(f"{self.command} {self.path}")
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_CONNECT = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.2:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def inside_target() -> Iterator[Catcher]:
    catcher = Catcher()
    yield catcher
    catcher.stop()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_an_inside_address_is_not_followed(
    db: Database,
    senders: Callable[..., Callbacks],
    receivers: Callable[..., Receiver],
    inside_target: Catcher,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
) -> None:
    # The guard is on; the first receiver passes for a public address (127.0.0.1 is treated
    # as one here), and sends the delivery on to 127.0.0.2 — still an inside address.
    real = callbacks_module._blocked_kind
    monkeypatch.setattr(
        callbacks_module,
        "_blocked_kind",
        lambda ip: None if str(ip) == "127.0.0.1" else real(ip),
    )
    target = f"{inside_target.url}/stolen"
    redirecting = receivers((status, {"Location": target}))
    callbacks = senders(allow_private=False, max_attempts=2)
    delivery_id = callbacks.enqueue(make_run(db).id, redirecting.url, PAYLOAD)

    callbacks.deliver_due()

    assert len(redirecting.requests) == 1
    assert inside_target.requests == []
    assert delivery(db, delivery_id).last_error == f"HTTP {status}"


def test_the_environments_proxy_is_not_used(
    db: Database,
    senders: Callable[..., Callbacks],
    receivers: Callable[..., Receiver],
    inside_target: Catcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A proxy would make the request from elsewhere, to wherever it likes: past the check."""
    proxy = inside_target.url
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    receiver = receivers(200)
    callbacks = senders(allow_private=True)
    delivery_id = callbacks.enqueue(make_run(db).id, receiver.url, PAYLOAD)

    callbacks.deliver_due()

    assert delivery(db, delivery_id).status == "delivered"
    assert inside_target.requests == [] and len(receiver.requests) == 1


# --- through the API ---------------------------------------------------------------------


INSIDE = "http://169.254.169.254/latest/meta-data/"


def test_the_api_refuses_inside_callback_urls_everywhere_it_takes_one(
    make_server: Callable[..., Server],
) -> None:
    server = make_server()
    user = server.user()
    worker = server.worker(user, "from runyard import sdk\nsdk.push({'a': 1})\n")
    with server.client(user) as api:
        run = api.post(f"/api/v2/workers/{worker}/runs", json={}).json()["data"]["run_slug"]
        wait_status(api, run, "succeeded")
        task = api.post(
            "/api/v2/worker-tasks", json={"worker_id": worker, "title": "t", "input": {}}
        ).json()["data"]["slug"]
        before = api.get("/api/v2/worker-runs").json()["data"]["count"]
        for path in (
            f"/api/v2/workers/{worker}/runs",
            f"/api/v2/worker-runs/{run}/rerun",
            f"/api/v2/workers/{worker}/runs/last/rerun",
            f"/api/v2/worker-tasks/{task}/runs",
        ):
            for url in (INSIDE, "http://[::ffff:127.0.0.1]:8000/", "http://2130706433/"):
                reply = api.post(path, json={"callback_url": url})
                assert reply.status_code == 422, (path, reply.text)
                body = reply.json()
                assert body["code"] == 11000 and body["details"][0].startswith("callback_url: ")
        assert api.get("/api/v2/worker-runs").json()["data"]["count"] == before  # none made


def test_the_operator_can_allow_inside_callback_urls(make_server: Callable[..., Server]) -> None:
    server = make_server(callback_allow_private=True)
    user = server.user()
    worker = server.worker(user, "from runyard import sdk\nsdk.push({'a': 1})\n")
    with server.client(user) as api:
        reply = api.post(f"/api/v2/workers/{worker}/runs", json={"callback_url": INSIDE})
        assert reply.status_code == 200, reply.text


def test_allowed_check_is_the_senders_too(db: Database, senders: Callable[..., Callbacks]) -> None:
    """A delivery row written while private targets were allowed is refused once they are
    not: the sender checks with its own setting, not the one the URL was accepted under."""
    callbacks = senders(allow_private=False, max_attempts=1)
    delivery_id = callbacks.enqueue(make_run(db).id, INSIDE, PAYLOAD)
    callbacks.deliver_due()
    record = delivery(db, delivery_id)
    assert record.status == "failed" and "link-local" in (record.last_error or "")
