"""The pipe from a worker's process to its parent: one ``<tag> <compact json>\\n`` line a message.

This module runs under the worker's interpreter (any Python 3.9+, maybe a bare virtualenv), so it
uses the standard library only. Writes are buffered and sent when the buffer passes ``LIMIT``
characters, at least every ``INTERVAL`` seconds while anything is pending (a daemon thread), on
``flush()`` and at exit. A write blocks while the parent is behind: that is the back-pressure.
"""

from __future__ import annotations

import atexit
import json
import json.encoder
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

#: Message tags (docs/workers.md, "The channel").
ROW, HEADERS, UPSERT, LOG = "R", "H", "U", "L"
#: Log levels as the channel carries them.
DEBUG, INFO, WARN, ERROR = 1, 2, 3, 4
LEVELS = {"debug": DEBUG, "info": INFO, "warn": WARN, "warning": WARN, "error": ERROR}
#: Buffered characters that trigger a write; ~64 KiB keeps syscalls few and latency low.
LIMIT = 64 * 1024
#: Longest time a pending message waits in the buffer.
INTERVAL = 0.2
#: Exit status when the parent has gone: the shell's code for "killed by SIGPIPE".
BROKEN_PIPE_EXIT = 141

CHANNEL_FD_ENV = "RUNYARD_CHANNEL_FD"
INPUT_ENV = "RUNYARD_INPUT"


def _make_dumps() -> Callable[[Any], str]:
    """``json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``, faster.

    ``json.dumps`` builds an encoder per call; reusing one C encoder is ~25% faster on rows.
    It is built without circular-reference markers (a shared markers dict would keep stale ids
    after a failed encode), so a cyclic row raises RecursionError, which callers translate.
    """
    reference = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    quote = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or quote is None:
        return reference.encode
    try:
        iterencode = make(None, reference.default, quote, None, ":", ",", False, False, False)
        for sample in ({"a": [1, 2.5, None, True], "é": {"k": "v\n\u2028"}}, "é\n", 7):
            if "".join(iterencode(sample, 0)) != reference.encode(sample):
                return reference.encode
    except Exception:
        # A private API that changed shape: the public encoder is always right.
        return reference.encode
    join = "".join

    def dumps(obj: Any) -> str:
        return join(iterencode(obj, 0))

    return dumps


#: Compact JSON text of ``obj``; NaN and infinities are refused (they are not JSON).
dumps = _make_dumps()


def encode_row(row: dict[str, Any]) -> str:
    """A row's compact JSON text; a row that contains itself is a ValueError."""
    try:
        return dumps(row)
    except RecursionError:
        raise ValueError("a row must not contain itself (circular reference)") from None


def log_payload(level: int, msg: object) -> str:
    """The payload of a log message; ``msg`` need not be a str."""
    text = msg if isinstance(msg, str) else str(msg)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A log line is never worth losing over a lone surrogate.
        text = text.encode("utf-8", "replace").decode("utf-8")
    return dumps({"level": level, "msg": text})


def one_line(text: str) -> str:
    """JSON text fit for one channel line: CR and LF (legal only as whitespace) become spaces."""
    if "\n" in text or "\r" in text:
        return text.replace("\r", " ").replace("\n", " ")
    return text


def read_input_text() -> str:
    """The run's input as the parent wrote it (``{}`` when there is none)."""
    path = os.environ.get(INPUT_ENV)
    if not path:
        return "{}"
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return "{}"
    return text if text.strip() else "{}"


class Channel:
    """A thread-safe buffered writer of channel messages on one file descriptor."""

    def __init__(self, fd: int, limit: int = LIMIT, interval: float = INTERVAL) -> None:
        os.fstat(fd)  # fail here, with the fd in the message, rather than at the first flush
        self.fd = fd
        self.limit = limit
        self.interval = interval
        self.broken = False
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._buf: list[str] = []
        self._size = 0
        self._pending_since = 0.0
        self._flusher: threading.Thread | None = None

    def after_fork_in_child(self) -> None:
        # A forked child must not resend its parent's pending lines, nor wait on a lock some
        # thread of the parent held at the fork; its flusher thread did not survive the fork.
        self._reset()

    def send(self, tag: str, payload: str) -> None:
        """Queue one message; ``payload`` must be JSON text without CR or LF."""
        self._append(tag + " " + payload + "\n")

    def send_many(self, tag: str, payloads: list[str]) -> None:
        """Queue one message per payload, as one append (the row fast path)."""
        if payloads:
            self._append(tag + " " + ("\n" + tag + " ").join(payloads) + "\n")

    def _append(self, text: str) -> None:
        with self._cond:
            if self.broken:
                raise SystemExit(BROKEN_PIPE_EXIT)
            buf = self._buf
            if not buf:
                self._pending_since = time.monotonic()
                if self._flusher is None and not self.closed:
                    self._start_flusher()
                self._cond.notify()
            buf.append(text)
            self._size += len(text)
            if self._size >= self.limit or self.closed:
                self._flush_locked()
                if self.broken:
                    # The parent is gone: stop the worker without a traceback.
                    raise SystemExit(BROKEN_PIPE_EXIT)

    def flush(self) -> None:
        """Write everything queued so far (blocks while the parent is behind)."""
        with self._cond:
            self._flush_locked()
            if self.broken:
                raise SystemExit(BROKEN_PIPE_EXIT)

    def drain(self) -> None:
        """Like ``flush``, but quiet when the parent is gone (for the way out)."""
        with self._cond:
            self._flush_locked()

    def close(self) -> None:
        """Flush and stop the flusher (at exit); later messages are written at once."""
        with self._cond:
            self.closed = True
            self._flush_locked()
            self._cond.notify_all()

    def _flush_locked(self) -> None:
        if not self._buf:
            return
        text = "".join(self._buf)
        self._buf = []
        self._size = 0
        if self.broken:
            return
        # A lone surrogate (say, from a surrogateescape-decoded name) becomes a \\udXXX escape:
        # the parent then rejects that one line with a clear error instead of losing the batch.
        data = memoryview(text.encode("utf-8", "backslashreplace"))
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except BrokenPipeError:
            self.broken = True

    def _start_flusher(self) -> None:
        thread = threading.Thread(target=self._run_flusher, name="runyard-channel", daemon=True)
        self._flusher = thread
        try:
            thread.start()
        except RuntimeError:
            # No new threads at interpreter shutdown (3.12+): write each message at once.
            self.closed = True

    def _run_flusher(self) -> None:
        me = threading.current_thread()
        with self._cond:
            while not self.closed and not self.broken and self._flusher is me:
                if not self._buf:
                    self._cond.wait()
                    continue
                # Wait out the rest of the interval since the oldest pending line, so a busy
                # writer's lines go in large writes rather than one per wake-up.
                remaining = self._pending_since + self.interval - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._flush_locked()


_channel: Channel | None = None
_channel_lock = threading.Lock()


def get_channel() -> Channel:
    """The process's channel, opened on first use from ``RUNYARD_CHANNEL_FD``.

    Outside Runyard (no variable set) messages go to stdout, so a worker can be tried by hand.
    """
    global _channel
    channel = _channel
    if channel is not None:
        return channel
    with _channel_lock:
        if _channel is None:
            value = os.environ.get(CHANNEL_FD_ENV)
            try:
                fd = int(value) if value else 1
            except ValueError:
                raise RuntimeError(f"{CHANNEL_FD_ENV}={value!r} is not a file descriptor") from None
            try:
                _channel = Channel(fd)
            except OSError as exc:
                raise RuntimeError(f"{CHANNEL_FD_ENV}={fd} is not open: {exc}") from None
            if value:
                # Programs the worker starts must not hold the pipe open after it exits.
                os.set_inheritable(fd, False)
            atexit.register(_channel.close)
        return _channel


def drain() -> None:
    """Write what is queued, if the channel was ever opened; quiet if the parent is gone."""
    if _channel is not None:
        _channel.drain()


def _after_fork_in_child() -> None:
    if _channel is not None:
        _channel.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def encode_rows(rows: Iterable[Any]) -> None:
    """Encode and queue dict rows in ~``LIMIT`` batches; a non-dict row is a TypeError.

    Rows before a bad one are still sent, as if each had been pushed on its own.
    """
    channel = get_channel()
    batch: list[str] = []
    append = batch.append
    size = 0
    limit = channel.limit
    encode = dumps
    try:
        for row in rows:
            if not isinstance(row, dict):
                raise TypeError(f"a row must be a dict, not {type(row).__name__}")
            try:
                text = encode(row)
            except RecursionError:
                raise ValueError("a row must not contain itself (circular reference)") from None
            append(text)
            size += len(text)
            if size >= limit:
                full = batch
                batch = []
                append = batch.append
                size = 0
                channel.send_many(ROW, full)
    finally:
        channel.send_many(ROW, batch)
