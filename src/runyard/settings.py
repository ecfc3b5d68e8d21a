"""The one settings object: built once from the environment (``RUNYARD_*``) and passed down."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    secret_key: str | None = None
    #: How long a download link stays valid.
    link_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    #: ``row``: ``offset`` counts rows (the seeds). ``page``: ``offset`` is a 1-based page number.
    offset_mode: Literal["row", "page"] = "row"
    #: Threads producing export files in the background.
    export_threads: int = Field(default=2, ge=1)
    host: str = "127.0.0.1"
    port: int = 8000

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'runyard.db').resolve()}"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    def resolved_secret_key(self) -> bytes:
        """The link-signing key; created with owner-only permissions on first use."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret.key"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return path.read_text().strip().encode()
