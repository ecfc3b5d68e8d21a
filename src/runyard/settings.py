"""The one settings object: built once from the environment (``RUNYARD_*``) and passed down."""

from __future__ import annotations

import os
import secrets
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

    #: Where the embedded mode keeps its database, export files and secret key.
    data_dir: Path = Path(".runyard")
    #: SQLAlchemy URL of the metadata and row database; default: SQLite in ``data_dir``.
    database_url: str | None = None
    #: Base of absolute download links (e.g. ``https://runyard.example.com``); default: taken
    #: from each request.
    public_url: str | None = None
    #: HMAC key for download links; default: generated once and kept in ``data_dir``.
    secret_key: SecretStr | None = None
    #: How long a download link stays valid.
    link_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    #: ``row``: ``offset`` counts rows (the seeds). ``page``: ``offset`` is a 1-based page number.
    offset_mode: Literal["row", "page"] = "row"
    #: How often export files whose links have all expired are deleted.
    sweep_interval_seconds: int = Field(default=3600, ge=1)
    #: Threads producing export files in the background.
    export_threads: int = Field(default=2, ge=1)
    host: str = "127.0.0.1"
    port: int = 8000

    # --- running workers -------------------------------------------------------------------
    #: Runs executing at once on this server; later runs wait as ``ready``.
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
    #: every version (and every server) pointing here; default ``data_dir/venvs``.
    venvs_dir: Path | None = None

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
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'runyard.db').resolve()}"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def packages_dir(self) -> Path:
        """Private copies of registered worker versions."""
        return self.data_dir / "workers"

    @property
    def resolved_venvs_dir(self) -> Path:
        return self.venvs_dir or self.data_dir / "venvs"

    @property
    def runs_dir(self) -> Path:
        """Per-run scratch directories (input file, temporary files of the worker)."""
        return self.data_dir / "runs"

    def resolved_secret_key(self) -> bytes:
        """The link-signing key; made on first use and kept in ``data_dir/secret.key``."""
        key = self.secret_key.get_secret_value() if self.secret_key else self._stored_key()
        if len(key) < MIN_SECRET_CHARS:
            raise ValueError(
                f"the link-signing key must have at least {MIN_SECRET_CHARS} characters"
            )
        return key.encode()

    def resolved_executor_name(self) -> str:
        return self.executor_name or self._stored(
            "executor.id", lambda: f"local-{secrets.token_hex(6)}"
        )

    def _stored_key(self) -> str:
        return self._stored("secret.key", lambda: secrets.token_hex(32))

    def _stored(self, name: str, make: Callable[[], str]) -> str:
        """A value made once and kept in ``data_dir/name`` (owner-only), the same for every
        process: written whole to a private file, then linked into place."""
        path = self.data_dir / name
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
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
