"""Callbacks against real HTTP receivers on loopback: retries, signatures, persistence, vetting."""

from __future__ import annotations

import itertools
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

import runyard
from runyard.services.callbacks import (
    Callbacks,
    check_callback_url,
    sign,
    status_payload,
    verify_signature,
)
from runyard.services.errors import InvalidInput
from runyard.settings import Settings
from runyard.storage import Database, Run, User
from runyard.storage.models import CallbackDelivery
from tests.callback_helpers import (  # noqa: F401 (fixtures)
    HANG,
    PAYLOAD,
    Receiver,
    db_fixture,
    delivery,
    make_run,
    receivers_fixture,
    senders_fixture,
)

pytestmark = pytest.mark.both_databases


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


# --- delivery and retries ---------------------------------------------------------------------


def test_retried_until_accepted_with_one_delivery_id_and_valid_signatures(
    db: Database, senders: Callable[..., Callbacks], receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(500, 500, 200)
    run = make_run(db)
    callbacks = senders()
    callbacks.start()
    delivery_id = callbacks.enqueue(run.id, receiver.url, PAYLOAD)

    wait_for(lambda: delivery(db, delivery_id).status == "delivered")
    time.sleep(0.3)  # nothing more may arrive once it is delivered

    assert len(receiver.requests) == 3
    secret = callbacks.webhook_secret(run.user_id)
    for request in receiver.requests:
        assert request.headers["X-Runyard-Delivery"] == delivery_id
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["User-Agent"] == f"Runyard/{runyard.__version__}"
        assert verify_signature(secret, request.headers["X-Runyard-Signature"], request.body)
        assert not verify_signature("0" * 64, request.headers["X-Runyard-Signature"], request.body)
        assert orjson.loads(request.body) == PAYLOAD
    record = delivery(db, delivery_id)
    assert record.attempts == 3
    # Backoff doubles: the second gap is at least twice the first delay.
    gaps = [b.at - a.at for a, b in itertools.pairwise(receiver.requests)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1


def test_receiver_that_never_answers_is_retried_then_failed_with_a_warning(
    db: Database,
    senders: Callable[..., Callbacks],
    receivers: Callable[..., Receiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = receivers(HANG)
    run = make_run(db)
    callbacks = senders(max_attempts=2, timeout_seconds=0.3)
    delivery_id = callbacks.enqueue(run.id, receiver.url, PAYLOAD)

    with caplog.at_level(logging.INFO, logger="runyard.callbacks"):
        assert callbacks.deliver_due() == 1
        first = delivery(db, delivery_id)
        assert (first.status, first.attempts) == ("pending", 1)
        assert "no answer" in (first.last_error or "")
        time.sleep(0.1)
        assert callbacks.deliver_due() == 1

    record = delivery(db, delivery_id)
    assert (record.status, record.attempts) == ("failed", 2)
    assert len(receiver.requests) == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and delivery_id in warnings[0].getMessage()
    signature = receiver.requests[0].headers["X-Runyard-Signature"]
    logged = caplog.text
    assert signature not in logged and "v1=" not in logged
    assert "token=abc" not in logged  # the URL's query may hold the user's secrets


def _closed_port_url() -> str:
    """A loopback URL nothing listens on: every connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


@pytest.mark.parametrize("down", ["refusing connections", "answering 503"])
def test_a_receiver_down_gets_exactly_max_attempts_with_doubling_backoff(
    down: str,
    db: Database,
    senders: Callable[..., Callbacks],
    receivers: Callable[..., Receiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = _closed_port_url() if down == "refusing connections" else receivers(503).url
    run = make_run(db)
    callbacks = senders(max_attempts=4, backoff_seconds=0.1)
    # When each attempt starts and ends: the wait runs from one's end to the next one's start
    # (a log line's time also holds the database write after the attempt, slow on a busy disk).
    spans: list[tuple[float, float]] = []
    send = callbacks._send

    def timed_send(*args: Any) -> str | None:
        started = time.time()
        try:
            return send(*args)
        finally:
            spans.append((started, time.time()))

    callbacks._send = timed_send  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="runyard.callbacks"):
        callbacks.start()
        delivery_id = callbacks.enqueue(run.id, url, PAYLOAD)
        wait_for(lambda: delivery(db, delivery_id).status == "failed")
        time.sleep(1.0)  # longer than the next backoff would be: nothing more is tried

    record = delivery(db, delivery_id)
    assert record.attempts == 4
    if down == "refusing connections":
        assert (record.last_error or "").startswith("could not connect to 127.0.0.1")
    else:
        assert record.last_error == "HTTP 503"
    attempts = [r for r in caplog.records if delivery_id in r.getMessage()]
    assert [r.levelno for r in attempts] == [logging.INFO] * 3 + [logging.WARNING]
    assert "failed for good after 4 attempts" in attempts[-1].getMessage()
    # Each wait doubles the one before: 0.1 s, 0.2 s, 0.4 s.
    assert len(spans) == 4
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(spans)]
    assert [gap >= 0.1 * 2**i for i, gap in enumerate(gaps)] == [True] * 3, gaps


def test_the_default_retries_span_what_the_spec_asks() -> None:
    # Spec §5: at least 8 attempts over at least an hour.
    settings = Settings()
    waits = [settings.callback_backoff_seconds * 2**i for i in range(7)]
    assert settings.callback_max_attempts == 8
    assert sum(waits) >= 3600


def test_redirects_are_not_followed(
    db: Database, senders: Callable[..., Callbacks], receivers: Callable[..., Receiver]
) -> None:
    target = receivers(200)
    redirecting = receivers((307, {"Location": target.url}))
    run = make_run(db)
    callbacks = senders()
    delivery_id = callbacks.enqueue(run.id, redirecting.url, PAYLOAD)

    callbacks.deliver_due()

    assert target.requests == []
    record = delivery(db, delivery_id)
    assert (record.status, record.last_error) == ("pending", "HTTP 307")


def test_pending_deliveries_survive_a_restart(
    tmp_path: Path,
    database_url: str | None,
    senders: Callable[..., Callbacks],
    receivers: Callable[..., Receiver],
) -> None:
    receiver = receivers(200)
    url = database_url or f"sqlite:///{tmp_path}/restart.sqlite"
    first_db = Database(url)
    first_db.migrate()
    run = make_run(first_db)
    first = Callbacks(
        first_db, allow_private=True, max_attempts=3, backoff_seconds=0.05, timeout_seconds=2
    )
    delivery_id = first.enqueue(run.id, receiver.url, PAYLOAD)
    first.close()  # never started: nothing was sent
    first_db.dispose()
    assert receiver.requests == []

    second_db = Database(url)
    second = Callbacks(
        second_db, allow_private=True, max_attempts=3, backoff_seconds=0.05, timeout_seconds=2
    )
    try:
        second.start()
        wait_for(lambda: delivery(second_db, delivery_id).status == "delivered")
    finally:
        second.close()
        second_db.dispose()
    assert [r.headers["X-Runyard-Delivery"] for r in receiver.requests] == [delivery_id]


def test_a_silent_receiver_does_not_hold_up_others(
    db: Database, senders: Callable[..., Callbacks], receivers: Callable[..., Receiver]
) -> None:
    silent = receivers(HANG)
    quick = receivers(200)
    slow_run = make_run(db)
    quick_run = make_run(db)
    callbacks = senders(timeout_seconds=3.0)
    callbacks.enqueue(slow_run.id, silent.url, PAYLOAD)
    started = time.monotonic()
    quick_id = callbacks.enqueue(quick_run.id, quick.url, PAYLOAD)
    callbacks.start()

    wait_for(lambda: delivery(db, quick_id).status == "delivered")
    assert time.monotonic() - started < 2.0


def test_close_returns_promptly_while_waiting_to_retry(
    db: Database, senders: Callable[..., Callbacks], receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(500)
    run = make_run(db)
    callbacks = senders(backoff_seconds=60)
    callbacks.start()
    delivery_id = callbacks.enqueue(run.id, receiver.url, PAYLOAD)
    wait_for(lambda: delivery(db, delivery_id).attempts == 1)

    started = time.monotonic()
    callbacks.close()
    assert time.monotonic() - started < 1.0
    assert delivery(db, delivery_id).status == "pending"


def test_delivery_rechecks_the_address(
    db: Database, senders: Callable[..., Callbacks], receivers: Callable[..., Receiver]
) -> None:
    # Accepted when the run was made (e.g. the name resolved elsewhere then); by the time it is
    # sent, the target is loopback and the server is not allowed to call it.
    receiver = receivers(200)
    run = make_run(db)
    callbacks = senders(allow_private=False, max_attempts=2)
    delivery_id = callbacks.enqueue(run.id, receiver.url, PAYLOAD)

    callbacks.deliver_due()

    assert receiver.requests == []
    record = delivery(db, delivery_id)
    assert record.status == "pending" and record.attempts == 1
    assert "loopback" in (record.last_error or "")


def test_localhost_name_is_delivered_when_private_targets_are_allowed(
    db: Database, senders: Callable[..., Callbacks], receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(204)
    run = make_run(db)
    callbacks = senders()
    url = receiver.url.replace("127.0.0.1", "localhost")
    delivery_id = callbacks.enqueue(run.id, url, PAYLOAD)

    callbacks.deliver_due()

    assert delivery(db, delivery_id).status == "delivered"
    assert receiver.requests[0].headers["Host"] == url.split("/")[2]


def test_deliveries_of_one_run_arrive_in_order(
    db: Database, senders: Callable[..., Callbacks], receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(200)
    run = make_run(db)
    callbacks = senders()
    statuses = ["running", "succeeded"]
    for status in statuses:
        callbacks.enqueue(run.id, receiver.url, {**PAYLOAD, "run_status": status})

    assert callbacks.deliver_due() == 2

    assert [orjson.loads(r.body)["run_status"] for r in receiver.requests] == statuses


def test_enqueued_with_the_status_change_only_if_it_commits(
    db: Database, senders: Callable[..., Callbacks], receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(200)
    run = make_run(db)
    callbacks = senders()
    callbacks.start()

    with db.session() as s:
        stored = s.get(Run, run.id)
        assert stored is not None
        stored.status = "failed"
        callbacks.enqueue(run.id, receiver.url, PAYLOAD, session=s)
        s.rollback()
    with db.session() as s, s.begin():
        stored = s.get(Run, run.id)
        assert stored is not None
        stored.status = "succeeded"
        stored.finished_at = int(time.time())
        stored.callback_url = receiver.url
        delivery_id = callbacks.notify(stored, session=s)
    assert delivery_id is not None

    # Well inside the sender's idle poll: the commit itself woke it.
    wait_for(lambda: delivery(db, delivery_id).status == "delivered", timeout=5)
    time.sleep(0.2)
    assert len(receiver.requests) == 1
    assert orjson.loads(receiver.requests[0].body)["run_status"] == "succeeded"
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(CallbackDelivery)) == 1


# --- the webhook secret and signatures --------------------------------------------------------


def test_webhook_secret_is_made_once_and_stored(
    db: Database, senders: Callable[..., Callbacks]
) -> None:
    run = make_run(db)
    callbacks = senders()

    secret = callbacks.webhook_secret(run.user_id)

    assert len(secret) == 64 and int(secret, 16) >= 0
    assert callbacks.webhook_secret(run.user_id) == secret
    with db.session() as s:
        assert s.scalar(select(User.webhook_secret).where(User.id == run.user_id)) == secret


def test_verify_signature_rejects_tampering_and_stale_timestamps() -> None:
    body = b'{"run_status":"succeeded"}'
    header = sign("s3cret", body)
    assert verify_signature("s3cret", header, body)
    assert not verify_signature("s3cret", header, body + b" ")
    assert not verify_signature("other", header, body)
    stale = sign("s3cret", body, timestamp=int(time.time()) - 301)
    assert not verify_signature("s3cret", stale, body)
    assert verify_signature("s3cret", stale, body, tolerance=600)
    assert not verify_signature("s3cret", "garbage", body)
    assert not verify_signature("s3cret", "t=abc,v1=00", body)


# --- URL vetting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/hook", "private"),
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://169.254.1.1/latest/meta-data", "link-local"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://localhost/hook", "loopback"),
    ],
)
def test_private_targets_are_refused_unless_allowed(url: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_callback_url(url, allow_private=False)
    assert refused.value.message == "invalid callback_url"
    assert refused.value.details is not None
    assert refused.value.details[0].startswith("callback_url: ")
    assert reason in refused.value.details[0]

    check_callback_url(url, allow_private=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hook", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("http:///hook", "no host"),
        ("http://does-not-exist.invalid/hook", "does not resolve"),
    ],
)
def test_bad_urls_are_refused_even_when_private_targets_are_allowed(url: str, reason: str) -> None:
    for allow_private in (False, True):
        with pytest.raises(InvalidInput) as refused:
            check_callback_url(url, allow_private=allow_private)
        assert refused.value.details is not None
        assert reason in refused.value.details[0]


def test_public_address_is_accepted() -> None:
    check_callback_url("https://1.1.1.1/hook", allow_private=False)


# --- the payload ------------------------------------------------------------------------------


def test_status_payload_of_a_running_run(db: Database) -> None:
    now = time.time()
    run = make_run(db, status="running", started_at=int(now) - 5, results=7)

    payload = status_payload(run, now=now)

    assert payload == {
        "run_slug": run.slug,
        "run_status": "running",
        "error_message": "",
        "execution_start_timestamp": int(now) - 5,
        "execution_end_timestamp": 0,
        "running_duration": 5,
        "result_count": 7,
        "result_message": "",
    }


def test_status_payload_of_finished_runs(db: Database) -> None:
    started = int(time.time()) - 100
    done = make_run(
        db, status="succeeded", started_at=started, finished_at=started + 42, results=123
    )

    payload = status_payload(done)

    assert payload["result_message"] == "succeeded with 123 results"
    assert payload["execution_end_timestamp"] == started + 42
    assert payload["running_duration"] == 42
    assert payload["error_message"] == ""
    types = {key: type(value) for key, value in payload.items()}
    assert types == {
        "run_slug": str,
        "run_status": str,
        "error_message": str,
        "execution_start_timestamp": int,
        "execution_end_timestamp": int,
        "running_duration": int,
        "result_count": int,
        "result_message": str,
    }

    failed = make_run(
        db,
        status="failed",
        started_at=started,
        finished_at=started + 3,
        err_msg="aborted by user",
    )
    payload = status_payload(failed)
    assert payload["error_message"] == "aborted by user"
    assert payload["result_message"] == "aborted by user"
    assert payload["running_duration"] == 3
