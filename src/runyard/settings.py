"""The one settings object: built once from the environment (``RUNYARD_*``) and passed down."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_CHARS = 32


class ProxyRegion(BaseModel):
    """One proxy region of ``RUNYARD_PROXIES``."""

    model_config = ConfigDict(extra="forbid")

    #: Shown by ``GET /proxy/region``; a mapping of language code to name for several languages.
    name: str | dict[str, str]
    urls: list[str] = Field(min_length=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RUNYARD_", extra="ignore")

    #: Where this process keeps its own state: the embedded database, run scratch directories,
    #: locks; and, unless ``shared_dir`` is set, the files below.
    data_dir: Path = Path(".runyard")
    #: Files every API server and execution node must see at the same path: worker packages,
    #: their virtualenvs, export files and the link-signing key (DESIGN §5); default
    #: ``data_dir``.
    shared_dir: Path | None = None
    #: SQLAlchemy URL of the metadata and row database; default: SQLite in ``data_dir``.
    #: ``postgresql://…`` uses psycopg 3. Secret: its password must never reach a log.
    database_url: SecretStr | None = None
    #: Connections each process keeps to PostgreSQL; at peaks it opens up to 41 more.
    database_pool_size: int = Field(default=10, ge=1)
    #: Base of absolute download links (e.g. ``https://runyard.example.com``); default: taken
    #: from each request.
    public_url: str | None = None
    #: HMAC key for download links; default: generated once and kept in ``shared_dir``.
    secret_key: SecretStr | None = None
    #: How long a download link stays valid.
    link_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    #: How long a console sign-in lasts (the session cookie's lifetime).
    console_session_seconds: int = Field(default=12 * 3600, ge=60)
    #: ``row``: ``offset`` counts rows (the seeds). ``page``: ``offset`` is a 1-based page number.
    offset_mode: Literal["row", "page"] = "row"
    #: How often export files whose links have all expired are deleted.
    sweep_interval_seconds: int = Field(default=3600, ge=1)
    #: Threads producing export files in the background.
    export_threads: int = Field(default=2, ge=1)
    host: str = "127.0.0.1"
    port: int = 8000

    # --- limits (docs/deploy.md, Limits) --------------------------------------------------
    #: Requests per second each API key may make, refilling its bucket (requests without a
    #: proven key count against the client's address); 0 turns rate limiting off. Each
    #: ``runyard serve`` process keeps its own buckets.
    rate_limit: float = Field(default=50, ge=0)
    #: Requests a key may make at once, above the steady rate, after a quiet spell.
    rate_burst: int = Field(default=100, ge=1)
    #: Largest request body; the ZIP upload of a worker version has its own, larger ceiling.
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    #: Largest request line plus headers.
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    #: Open connections (and requests in progress) past which new requests are answered 503
    #: at once; 0: no limit but the process's open-files limit.
    max_connections: int = Field(default=2048, ge=0)
    #: Open connections one client address may hold; past it new ones are closed at once, so
    #: one client cannot take all of ``max_connections``. 0: no limit. Behind a reverse proxy
    #: every connection comes from the proxy's address: raise it, or set 0.
    max_connections_per_address: int = Field(default=256, ge=0)
    #: Addresses of reverse proxies whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` headers
    #: are believed (comma-separated addresses or networks, or ``*``); empty: none are — a
    #: client's address is its connection's, so it cannot pick its own rate-limit bucket.
    forwarded_allow_ips: str = ""
    #: How long an idle keep-alive connection stays open.
    keep_alive_seconds: int = Field(default=5, ge=1)
    #: How long a client may take to send a request's line and headers (slow-loris clients).
    header_timeout_seconds: float = Field(default=10, gt=0)
    #: How long a request body may stall with no byte arriving before it is answered 408.
    body_timeout_seconds: float = Field(default=30, gt=0)

    # --- running workers -------------------------------------------------------------------
    #: Runs executing at once on this server (in the ``celery`` mode: on each ``runyard
    #: worker`` node); later runs wait as ``ready``.
    max_concurrent_runs: int = Field(default=2, ge=1)
    #: Default ``execute_limit_time_seconds`` of a run.
    run_timeout_seconds: int = Field(default=1800, ge=1)
    #: Longest wait of a synchronous ``POST .../runs`` (``is_async: false``).
    sync_wait_seconds: float = Field(default=300, gt=0)
    #: A row larger than this (bytes of JSON) is refused with a log line; the run goes on.
    max_row_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: Log lines kept per run; past it one line says how many were dropped.
    run_log_max_lines: int = Field(default=20_000, ge=100)
    #: Name of this executor; runs it owned are failed when it starts again. Default: a name
    #: made once and kept in ``data_dir``, so it survives a new host name (containers).
    executor_name: str | None = None
    #: Arguments given to ``pip install`` when a worker's ``requirements.txt`` is installed
    #: (e.g. ``--index-url ...`` for a private mirror).
    pip_args: list[str] = []
    #: Virtualenvs built from workers' ``requirements.txt``, one per distinct file, reused by
    #: every version (and every server) pointing here; default ``shared_dir/venvs``.
    venvs_dir: Path | None = None
    #: ``bwrap``: every worker runs inside a bubblewrap sandbox that shows it none of the
    #: server's files (docs/workers.md, Trust); the server refuses to start without a working
    #: ``bwrap``. ``none``: workers run as the server's own user, seeing what it sees.
    sandbox: Literal["bwrap", "none"] = "bwrap"
    #: Size of a sandboxed worker's ``/dev/shm``, in MiB: a tmpfs, held in the host's memory
    #: uncounted by the run's memory limit (a run's limit lowers it). Raise it for browsers
    #: that need more shared memory; ``/tmp`` is on disk (the run's scratch directory).
    sandbox_shm_mb: int = Field(default=64, ge=1)

    # --- scale-out (docs/deploy.md) -------------------------------------------------------
    #: ``local``: runs execute inside ``runyard serve``. ``celery``: ``runyard serve`` queues
    #: them on ``broker_url`` and ``runyard worker`` nodes execute them.
    executor: Literal["local", "celery"] = "local"
    #: Celery broker of the ``celery`` executor: ``redis://…`` or ``amqp://…`` (RabbitMQ).
    broker_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    #: How often an execution node records that it is alive.
    node_heartbeat_seconds: float = Field(default=5, gt=0)
    #: A node silent this long is dead: its runs fail, and it may not write to them again.
    node_lease_seconds: float = Field(default=30, gt=0)
    #: Broker queue the ``celery`` executor sends runs to and ``runyard worker`` nodes consume:
    #: deployments sharing a broker keep apart by giving each its own.
    celery_queue: str = Field(default="runyard", min_length=1)
    #: A ``ready`` run handed to the broker this long ago and still not taken is sent again
    #: (its message was lost), once the queue has nothing else waiting.
    run_requeue_seconds: float = Field(default=120, gt=0)

    # --- tasks, schedules, proxies ---------------------------------------------------------
    #: Time zone schedules fire in (an IANA name).
    timezone: str = "UTC"
    #: How often the scheduler looks for due schedules.
    schedule_poll_seconds: float = Field(default=5, gt=0)
    #: Proxies per region code, e.g. ``{"US": {"name": "United States",
    #: "urls": ["http://user:pass@proxy.example:8080"]}}``; a run with
    #: ``parameters.system.proxy_region`` gets one of the region's URLs in its environment.
    proxies: dict[str, ProxyRegion] = {}

    # --- callbacks ---------------------------------------------------------------------------
    #: Allow callbacks to private, loopback and link-local addresses (refused by default).
    callback_allow_private: bool = False
    #: Delivery attempts before a callback is given up.
    callback_max_attempts: int = Field(default=8, ge=1)
    #: First retry delay; each later one doubles (8 attempts span about 2 hours by default).
    callback_backoff_seconds: float = Field(default=60, gt=0)
    #: How long one delivery waits for the receiver's answer.
    callback_timeout_seconds: float = Field(default=10, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name like Europe/Paris)"
            ) from None
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'runyard.db').resolve()}"

    @property
    def resolved_shared_dir(self) -> Path:
        return self.shared_dir or self.data_dir

    @property
    def files_dir(self) -> Path:
        return self.resolved_shared_dir / "files"

    @property
    def packages_dir(self) -> Path:
        """Private copies of registered worker versions."""
        return self.resolved_shared_dir / "workers"

    @property
    def resolved_venvs_dir(self) -> Path:
        return self.venvs_dir or self.resolved_shared_dir / "venvs"

    @property
    def runs_dir(self) -> Path:
        """Per-run scratch directories (input file, temporary files of the worker)."""
        return self.data_dir / "runs"

    def resolved_secret_key(self) -> bytes:
        """The link-signing key; made on first use and kept in ``shared_dir/secret.key``, so
        every API server signs and checks links alike."""
        key = self.secret_key.get_secret_value() if self.secret_key else self._stored_key()
        if len(key) < MIN_SECRET_CHARS:
            raise ValueError(
                f"the link-signing key must have at least {MIN_SECRET_CHARS} characters"
            )
        return key.encode()

    def resolved_executor_name(self) -> str:
        return self.executor_name or self._stored(
            self.data_dir, "executor.id", lambda: f"local-{secrets.token_hex(6)}"
        )

    def resolved_node_name(self) -> str:
        """The name of a ``runyard worker`` node: ``executor_name``, or one made once and kept
        in ``data_dir``, so a node restarted on the same machine knows its runs again."""
        return self.executor_name or self._stored(
            self.data_dir, "node.id", lambda: f"{socket.gethostname()}-{secrets.token_hex(3)}"
        )

    def _stored_key(self) -> str:
        return self._stored(self.resolved_shared_dir, "secret.key", lambda: secrets.token_hex(32))

    @staticmethod
    def _stored(directory: Path, name: str, make: Callable[[], str]) -> str:
        """A value made once and kept in ``directory/name`` (owner-only), the same for every
        process: written whole to a private file, then linked into place."""
        path = directory / name
        if not path.exists():
            directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{name}.{secrets.token_hex(8)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(make())
                    f.flush()
                    os.fsync(f.fileno())
                os.link(tmp, path)  # fails if another process won the race: use its value
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        return path.read_text().strip()
