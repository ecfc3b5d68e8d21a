"""Where finished export files live: a local directory now, shared storage later."""

from __future__ import annotations

import fcntl
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

    def sweep_abandoned(self) -> int:
        """Remove temporary files whose writer is gone, however recent (after a restart)."""


class LocalFileStore:
    """Files in one directory. A file appears under its name only once complete (written to a
    temporary name, fsynced, then renamed), so a crash never leaves a half file to be served.

    A temporary file is held with an exclusive ``flock`` while it is written, so one no process
    holds is known to be abandoned (its writer crashed or was killed) and can go at once, even
    in a directory several servers share (NFS passes such locks on).
    """

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
        tmp, held = self._temporary(target)
        try:
            yield tmp
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
            # The rename itself must be on disk before anything says the file is there.
            directory = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        finally:
            tmp.unlink(missing_ok=True)
            os.close(held)

    @staticmethod
    def _temporary(target: Path) -> tuple[Path, int]:
        """A new temporary path beside ``target``, and a descriptor holding its lock."""
        while True:
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink:
                return tmp, fd
            # A sweep took it for abandoned between the open and the lock: another name.
            os.close(fd)

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

    def sweep_abandoned(self) -> int:
        removed = 0
        for tmp in self.root.glob(".*.tmp"):
            try:
                fd = os.open(tmp, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # being written
                continue
            try:
                # Unlinked while locked: a writer that locks it after us sees it gone.
                tmp.unlink(missing_ok=True)
                removed += 1
            finally:
                os.close(fd)
        return removed
