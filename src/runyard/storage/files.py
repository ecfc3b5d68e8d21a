"""Where finished export files live: a local directory now, shared storage later."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol


class FileStore(Protocol):
    def path(self, name: str) -> Path | None:
        """The local path of a complete file, or None if there is no such file."""

    @contextmanager
    def writing(self, name: str) -> Iterator[Path]:
        """A temporary path to write to; published under ``name`` only if the block succeeds."""
        yield Path()  # pragma: no cover - protocol

    def delete(self, name: str) -> None: ...

    def sweep_temporary(self, older_than: float) -> int:
        """Remove temporary files a crashed writer left, untouched since ``older_than``."""


class LocalFileStore:
    """Files in one directory. A file appears under its name only once complete (written to a
    temporary name, fsynced, then renamed), so a crash never leaves a half file to be served."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _target(self, name: str) -> Path:
        if "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"bad file name {name!r}")
        return self.root / name

    def path(self, name: str) -> Path | None:
        target = self._target(name)
        return target if target.is_file() else None

    @contextmanager
    def writing(self, name: str) -> Iterator[Path]:
        target = self._target(name)
        tmp = target.with_name(f".{name}.{uuid.uuid4().hex}.tmp")
        try:
            yield tmp
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, name: str) -> None:
        self._target(name).unlink(missing_ok=True)

    def sweep_temporary(self, older_than: float) -> int:
        removed = 0
        for tmp in self.root.glob(".*.tmp"):
            try:
                if tmp.stat().st_mtime < older_than:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:  # finished or swept by someone else meanwhile
                pass
        return removed
