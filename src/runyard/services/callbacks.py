"""Run status callbacks (spec §5): URL vetting, the payload, and a persistent, retrying sender.

Every delivery is a ``callback_deliveries`` row before anything is sent, so a restart loses
none: whichever ``Callbacks`` next runs on the database sends what is still pending. Before a
row is sent it is *claimed* by pushing its ``next_attempt_at`` past the longest an attempt can
take (a lease): a second process on the same database skips it, and if this process dies
mid-request the row simply becomes due again once the lease runs out (at-least-once delivery;
``X-Runyard-Delivery`` lets receivers drop the duplicate).

Attempts run on a small thread pool rather than one after the other, so a receiver that never
answers ties up one thread for ``timeout_seconds`` while the others keep serving everybody
else. Only as many rows are claimed as there are free threads, so a claimed row never sits in
a queue while its lease runs out. Deliveries of one run are never in flight together, which
keeps a run's ``running`` and ``succeeded`` callbacks in order whenever both are due at once.

A callback URL is a request the server makes on a user's behalf, so its host is resolved and
every address vetted (unless the operator allows private targets), and the request is then
sent to the vetted address itself, with the original name as ``Host`` and TLS server name: a
name that resolves differently a moment later (DNS rebinding) cannot steer the request inside.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial
from typing import Any

import httpx
import orjson
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session
from ulid import ULID

from runyard import __version__
from runyard.services.errors import InvalidInput, NotFound
from runyard.services.runs import FINISHED, run_duration
from runyard.storage import Database, Run, User
from runyard.storage.models import CallbackDelivery

log = logging.getLogger("runyard.callbacks")

SIGNATURE_HEADER = "X-Runyard-Signature"
DELIVERY_HEADER = "X-Runyard-Delivery"
USER_AGENT = f"Runyard/{__version__}"
MAX_URL_CHARS = 2048
#: The sender looks at the table at least this often, to see rows another process added.
_IDLE_POLL_SECONDS = 10.0
#: Rows looked at per pass; enough to find due rows of idle runs behind those of busy ones.
_SCAN_ROWS = 200
#: A name resolving to many addresses: only the first few are tried, bounding an attempt.
_MAX_ADDRESSES = 3
#: Exponent cap so a large ``max_attempts`` cannot overflow the float delay.
_MAX_BACKOFF_EXPONENT = 30

#: ``runs.FINISHED``, restated: ``runs`` may build the synchronous reply with ``status_payload``, so
#: importing it here would make the two modules import each other.
_ALLOWED_SCHEMES = frozenset({"http", "https"})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# --- URL vetting ------------------------------------------------------------------------------


def _refuse(reason: str) -> InvalidInput:
    return InvalidInput("invalid callback_url", details=[f"callback_url: {reason}"])


def _embedded_ipv4(ip: IPAddress) -> Iterator[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address reaches through (mapped, 6to4, Teredo, NAT64)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return
    if ip.ipv4_mapped is not None:
        yield ip.ipv4_mapped
    if ip.sixtofour is not None:
        yield ip.sixtofour
    if ip.teredo is not None:
        yield from ip.teredo
    if ip in _NAT64:
        yield ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


def _blocked_kind(ip: IPAddress) -> str | None:
    """What makes ``ip`` an address the server must not call on a user's behalf, or None."""
    for inner in _embedded_ipv4(ip):
        kind = _blocked_kind(inner)
        if kind is not None:
            return kind
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:  # e.g. 100.64.0.0/10, the carrier-grade NAT range
        return "non-public"
    return None


def _parse(url: str) -> httpx.URL:
    # Parsed by httpx, the same parser that sends the request: a URL read one way when vetted
    # and another way when sent is a classic way around such checks.
    if len(url) > MAX_URL_CHARS:
        raise _refuse(f"longer than {MAX_URL_CHARS} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise _refuse(f"not a valid URL ({exc})") from None
    if parsed.scheme not in _ALLOWED_SCHEMES:
        raise _refuse("only http and https URLs are allowed")
    if not parsed.host:
        raise _refuse("the URL has no host")
    return parsed


def _hostname(url: httpx.URL) -> str:
    """The host as the resolver wants it: IDNA-encoded, IPv6 literals without brackets."""
    return url.raw_host.decode("ascii").strip("[]")


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _resolve(url: httpx.URL, *, allow_private: bool) -> list[str]:
    """The addresses to connect to, in resolver order; raises InvalidInput if any is barred.

    Any barred address refuses the whole URL: which address a client ends up using is the
    resolver's choice, not ours.
    """
    host = _hostname(url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise _refuse(f"host {host!r} does not resolve") from None
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise _refuse(f"host {host!r} does not resolve")
    if allow_private:
        return addresses
    for address in addresses:
        ip = ipaddress.ip_address(address)
        kind = _blocked_kind(ip)
        if kind is None:
            continue
        article = "an" if kind[0] in "aeiou" else "a"
        where = f"{address} is" if address == host else f"{host!r} resolves to {address},"
        raise _refuse(
            f"{where} {article} {kind} address; this server does not send callbacks to "
            "private, loopback, link-local or other non-public addresses"
        )
    return addresses


def check_callback_url(url: str, *, allow_private: bool) -> None:
    """Refuse (InvalidInput) a callback URL that is not http(s), has no host, does not resolve,
    or resolves to any non-public address while ``allow_private`` is off."""
    _resolve(_parse(url), allow_private=allow_private)


# --- payload and signature --------------------------------------------------------------------


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def status_payload(run: Run, *, now: float | None = None) -> dict[str, Any]:
    """The §5 callback body; the synchronous run reply (§3) is made of the same fields."""
    duration = run_duration(run, time.time() if now is None else now)
    error = run.err_msg or ""
    if run.status not in FINISHED:
        message = ""
    elif run.status == "succeeded":
        message = f"succeeded with {_plural(run.results, 'result')}"
    else:
        message = error or run.status
    return {
        "run_slug": run.slug,
        "run_status": run.status,
        "error_message": error,
        "execution_start_timestamp": run.started_at,
        "execution_end_timestamp": run.finished_at,
        "running_duration": duration,
        "result_count": run.results,
        "result_message": message,
    }


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    # The timestamp is signed with the body so a captured delivery cannot be replayed later
    # under a fresh timestamp.
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The ``X-Runyard-Signature`` value: ``t=<unix seconds>,v1=<hex HMAC-SHA256>``.

    The key is the secret string's UTF-8 bytes; the message is ``f"{t}."`` followed by the
    exact request body.
    """
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_digest(secret, t, body)}"


def verify_signature(
    secret: str, header: str, body: bytes, *, tolerance: int = 300, now: float | None = None
) -> bool:
    """Whether ``header`` (an ``X-Runyard-Signature`` value) signs ``body`` with ``secret`` and
    its timestamp is within ``tolerance`` seconds of now. Several ``v1`` entries are allowed,
    any one matching is enough."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def _origin(url: str) -> str:
    """Scheme, host and port only: a callback URL's path or query may carry the user's own
    tokens, which have no place in the server log."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid url>"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


# --- the sender -------------------------------------------------------------------------------


class Callbacks:
    """Queues callback deliveries in the database and sends them from background threads."""

    def __init__(
        self,
        db: Database,
        *,
        allow_private: bool,
        max_attempts: int,
        backoff_seconds: float,
        timeout_seconds: float,
        threads: int = 4,
    ) -> None:
        self.db = db
        self.allow_private = allow_private
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.timeout_seconds = timeout_seconds
        self._threads = threads
        # Resolution has no timeout of its own and up to _MAX_ADDRESSES connections are
        # tried, so the lease is generous: it only matters after a crash or to other processes.
        self._lease_seconds = (_MAX_ADDRESSES + 1) * timeout_seconds + 60
        # Built once: loading the CA bundle per attempt would cost more than the request.
        self._ssl = httpx.create_ssl_context()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="runyard-callback")
        self._lock = threading.Lock()  # guards the two sets below
        self._busy_runs: set[int] = set()
        self._inflight: set[Future[None]] = set()
        self._dispatching = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- queueing ---

    def enqueue(
        self, run_id: int, url: str, payload: dict[str, Any], *, session: Session | None = None
    ) -> str:
        """Record a delivery of ``payload`` to ``url``, due now; returns its delivery id.

        With ``session``, the row is added to that session, so it commits (or not) together
        with the status change it reports; the sender is woken once that session commits.
        """
        now = time.time()
        delivery = CallbackDelivery(
            run_id=run_id,
            delivery_id=str(ULID()),
            url=url,
            payload=orjson.dumps(payload).decode(),
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        if session is not None:
            session.add(delivery)
            event.listen(session, "after_commit", self._wake_after_commit, once=True)
            return delivery.delivery_id
        with self.db.session() as s, s.begin():
            s.add(delivery)
        self._wake.set()
        return delivery.delivery_id

    def notify(self, run: Run, *, session: Session | None = None) -> str | None:
        """Enqueue ``run``'s current status if it has a callback URL; the delivery id or None."""
        if not run.callback_url:
            return None
        return self.enqueue(run.id, run.callback_url, status_payload(run), session=session)

    def _wake_after_commit(self, _session: Session) -> None:
        self._wake.set()

    def webhook_secret(self, user_id: int) -> str:
        """The user's signing secret, made and stored on first use."""
        with self.db.session() as s, s.begin():
            row = s.execute(select(User.id, User.webhook_secret).where(User.id == user_id)).first()
            if row is None:
                raise NotFound("user not found")
            if row[1]:
                return str(row[1])
            # Conditional, so two first uses at once agree on one secret: the loser's update
            # matches nothing and it reads the winner's.
            s.execute(
                update(User)
                .where(User.id == user_id, User.webhook_secret.is_(None))
                .values(webhook_secret=secrets.token_hex(32))
            )
            secret = s.scalar(select(User.webhook_secret).where(User.id == user_id))
        if not secret:
            raise RuntimeError(f"webhook secret of user {user_id} was not stored")
        return secret

    # --- running ---

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="runyard-callbacks", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop sending. Returns at once: a request in flight finishes (and is recorded) on
        its own thread, and one that cannot is retried after its lease by the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    def deliver_due(self) -> int:
        """Attempt every delivery due now once, waiting for the answers; returns how many.

        Several deliveries of one run go one after the other, in order.
        """
        attempted: set[int] = set()
        while True:
            futures, _ = self._dispatch(attempted)
            if not futures:
                return len(attempted)
            wait(futures)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                _, blocked = self._dispatch(set())
                # Due rows left behind wait for a thread or for their run's delivery in
                # flight; either finishing sets the wake event.
                delay = _IDLE_POLL_SECONDS if blocked else self._until_next_due()
            except Exception:
                log.exception("callback sender: a pass failed; trying again shortly")
                delay = 5.0
            self._wake.wait(delay)

    def _until_next_due(self) -> float:
        with self.db.session() as s:
            due = s.scalar(
                select(func.min(CallbackDelivery.next_attempt_at)).where(
                    CallbackDelivery.status == "pending"
                )
            )
        if due is None:
            return _IDLE_POLL_SECONDS
        return min(max(0.0, due - time.time()), _IDLE_POLL_SECONDS)

    def _dispatch(self, attempted: set[int]) -> tuple[list[Future[None]], bool]:
        """Claim and submit due deliveries, as many as there are free threads, skipping those
        in ``attempted`` (which gets the submitted ones). Also returns whether due deliveries
        were left behind for want of a thread or because their run has one in flight."""
        with self._dispatching:
            now = time.time()
            with self._lock:
                free = self._threads - len(self._inflight)
                busy = set(self._busy_runs)
            with self.db.session() as s:
                rows = s.execute(
                    select(
                        CallbackDelivery.id,
                        CallbackDelivery.run_id,
                        CallbackDelivery.next_attempt_at,
                    )
                    .where(
                        CallbackDelivery.status == "pending",
                        CallbackDelivery.next_attempt_at <= now,
                    )
                    .order_by(CallbackDelivery.next_attempt_at, CallbackDelivery.id)
                    .limit(_SCAN_ROWS)
                ).all()
            futures: list[Future[None]] = []
            blocked = False
            runs_seen: set[int] = set()
            for delivery_pk, run_id, due in rows:
                if delivery_pk in attempted:
                    continue
                if run_id in busy or run_id in runs_seen:
                    blocked = True
                    continue
                runs_seen.add(run_id)
                if len(futures) >= free:
                    blocked = True
                    break
                if not self._claim(delivery_pk, due, now):
                    continue  # another process took it
                attempted.add(delivery_pk)
                with self._lock:
                    self._busy_runs.add(run_id)
                    future = self._pool.submit(self._attempt, delivery_pk)
                    self._inflight.add(future)
                future.add_done_callback(partial(self._finished, run_id))
                futures.append(future)
            return futures, blocked

    def _claim(self, delivery_pk: int, due: float, now: float) -> bool:
        with self.db.engine.begin() as conn:
            result = conn.execute(
                update(CallbackDelivery)
                .where(
                    CallbackDelivery.id == delivery_pk,
                    CallbackDelivery.status == "pending",
                    CallbackDelivery.next_attempt_at == due,
                )
                .values(next_attempt_at=now + self._lease_seconds)
            )
        return result.rowcount == 1

    def _finished(self, run_id: int, future: Future[None]) -> None:
        with self._lock:
            self._busy_runs.discard(run_id)
            self._inflight.discard(future)
        self._wake.set()

    # --- one attempt ---

    def _attempt(self, delivery_pk: int) -> None:
        try:
            with self.db.session() as s:
                row = s.execute(
                    select(CallbackDelivery, Run.user_id, Run.slug)
                    .join(Run, Run.id == CallbackDelivery.run_id)
                    .where(CallbackDelivery.id == delivery_pk)
                ).first()
            if row is None:
                return  # its run was deleted meanwhile
            delivery, user_id, run_slug = row
            error = self._send(delivery, user_id)
            self._record(delivery, run_slug, error)
        except Exception:
            # Left claimed: it becomes due again when the lease runs out.
            log.exception("callback delivery %d: internal error", delivery_pk)

    def _send(self, delivery: CallbackDelivery, user_id: int) -> str | None:
        """POST the delivery; None when the receiver took it (2xx), else why not."""
        try:
            url = _parse(delivery.url)
            addresses = _resolve(url, allow_private=self.allow_private)
        except InvalidInput as exc:
            return "refused: " + (exc.details[0] if exc.details else exc.message)
        body = delivery.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            DELIVERY_HEADER: delivery.delivery_id,
            SIGNATURE_HEADER: sign(self.webhook_secret(user_id), body),
            "Host": url.netloc.decode("ascii"),
        }
        host = _hostname(url)
        extensions: dict[str, Any] = {}
        if url.scheme == "https" and not _is_ip_literal(host):
            # Connecting to an address, TLS must still name (and verify) the original host.
            extensions["sni_hostname"] = host
        started = time.monotonic()
        error = "no address to connect to"
        with httpx.Client(
            verify=self._ssl,
            timeout=self.timeout_seconds,
            follow_redirects=False,
            # The environment's proxy would make the request from elsewhere, past the vetting.
            trust_env=False,
        ) as client:
            for address in addresses[:_MAX_ADDRESSES]:
                if time.monotonic() - started > self.timeout_seconds:
                    break
                target = url.copy_with(host=address)
                try:
                    # Streamed and never read: the answer's status is all that counts, and a
                    # receiver could otherwise make us buffer an endless body.
                    with client.stream(
                        "POST", target, content=body, headers=headers, extensions=extensions
                    ) as response:
                        status = response.status_code
                except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                    error = f"could not connect to {address}: {str(exc) or type(exc).__name__}"
                    continue  # the name may have other addresses that answer
                except httpx.TimeoutException:
                    return f"no answer within {self.timeout_seconds:g}s"
                except httpx.HTTPError as exc:
                    return f"{type(exc).__name__}: {exc}"[:500]
                if 200 <= status < 300:
                    return None
                return f"HTTP {status}"
        return error[:500]

    def _record(self, delivery: CallbackDelivery, run_slug: str, error: str | None) -> None:
        now = time.time()
        attempts = delivery.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "last_error": error}
        if error is None:
            values["status"] = "delivered"
        elif attempts >= self.max_attempts:
            values["status"] = "failed"
        else:
            exponent = min(attempts - 1, _MAX_BACKOFF_EXPONENT)
            values["next_attempt_at"] = now + self.backoff_seconds * 2**exponent
        with self.db.session() as s, s.begin():
            s.execute(
                update(CallbackDelivery)
                .where(CallbackDelivery.id == delivery.id, CallbackDelivery.status == "pending")
                .values(**values)
            )
        where = _origin(delivery.url)
        if error is None:
            log.info(
                "callback %s for run %s delivered to %s (attempt %d)",
                delivery.delivery_id,
                run_slug,
                where,
                attempts,
            )
        elif values.get("status") == "failed":
            log.warning(
                "callback %s for run %s to %s failed for good after %d attempts: %s",
                delivery.delivery_id,
                run_slug,
                where,
                attempts,
                error,
            )
        else:
            log.info(
                "callback %s for run %s to %s: attempt %d of %d failed (%s); next in %.1fs",
                delivery.delivery_id,
                run_slug,
                where,
                attempts,
                self.max_attempts,
                error,
                values["next_attempt_at"] - now,
            )
