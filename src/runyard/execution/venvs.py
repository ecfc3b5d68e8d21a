"""Virtualenvs for workers' ``requirements.txt``: built once per distinct file, then shared.

A venv lives in ``root/<key>``, the key a hash of the normalised requirements and the server's
Python, so every version with the same requirements runs in the same venv and a Python upgrade
gets fresh ones. A venv is built in a temporary sibling directory and renamed into place only
once ``pip`` succeeded: a directory at ``root/<key>`` is always complete, and a failed or killed
build leaves nothing that looks usable. A lock file per key makes a second process (or thread)
wanting the same venv wait for the first build instead of running its own.

Venvs do not see the server's packages: a worker gets exactly what it asked for.
"""

from __future__ import annotations

import collections
import fcntl
import hashlib
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

#: Lines of pip's output a failed install reports.
TAIL_LINES = 20
_BIN = "bin"
#: pip's own rule: a comment starts at a "#" that begins the line or follows whitespace.
_COMMENT = re.compile(r"(^|\s+)#.*$")


def pip_environment() -> dict[str, str]:
    """pip runs the packages' build code: it gets what it needs to reach an index, not the
    server's secrets or database URL (which may sit in its environment)."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "PIP_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
    return {
        name: value
        for name, value in os.environ.items()
        if name.upper().startswith(keep) and not name.startswith("RUNYARD_")
    }


class VenvBuildError(RuntimeError):
    """The server could not make a virtualenv at all (not the worker's fault)."""


class RequirementsFailed(Exception):
    """``pip install -r requirements.txt`` failed: the worker's fault; ``details`` says why."""

    def __init__(self, message: str, details: list[str]) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


def normalise_requirements(requirements: str) -> str:
    """The requirements with blank lines, comments and stray whitespace removed.

    Files differing only in those share a venv. Line order is kept as written.
    """
    lines = (_COMMENT.sub("", raw).strip() for raw in requirements.splitlines())
    return "\n".join(line for line in lines if line)


class VenvBuilder:
    def __init__(self, root: Path, pip_args: Sequence[str] = (), *, timeout: float = 1800) -> None:
        # Absolute: the path handed out is run from each run's own working directory.
        self.root = root.absolute()
        self.pip_args = list(pip_args)
        #: Longest a ``pip install`` may take before it is killed and the build fails.
        self.timeout = timeout

    def key(self, requirements: str) -> str:
        """The venv's directory name for these requirements on this Python."""
        text = normalise_requirements(requirements)
        # The base prefix too: a venv links to its interpreter, so another install of the same
        # version cannot reuse it.
        python = f"{platform.python_implementation()} {platform.python_version()} {sys.base_prefix}"
        return hashlib.sha256(f"{text}\n--\n{python}".encode()).hexdigest()[:16]

    def python_for(
        self, requirements: str | None, *, on_progress: Callable[[str], None] | None = None
    ) -> str:
        """The interpreter for a worker with these requirements, building its venv if needed.

        No requirements (or only blanks and comments): the server's own interpreter. Raises
        ``RequirementsFailed`` with pip's last lines when the requirements cannot be installed.
        """
        if requirements is None or not normalise_requirements(requirements):
            return sys.executable
        progress = on_progress or _ignore
        key = self.key(requirements)
        target = self.root / key
        if _python(target).exists():
            return str(_python(target))
        self.root.mkdir(parents=True, exist_ok=True)
        with _locked(self.root / f".{key}.lock"):
            if _python(target).exists():  # built by whoever held the lock before us
                progress(f"virtualenv {key} is ready")
                return str(_python(target))
            for stale in self.root.glob(f".{key}.tmp-*"):  # left by a killed build
                shutil.rmtree(stale, ignore_errors=True)
            tmp = self.root / f".{key}.tmp-{secrets.token_hex(4)}"
            try:
                self._build(tmp, target, requirements, progress)
                tmp.rename(target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        progress(f"virtualenv {key} is ready")
        return str(_python(target))

    def _build(
        self, tmp: Path, target: Path, requirements: str, progress: Callable[[str], None]
    ) -> None:
        progress(f"creating virtualenv {target.name}")
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(tmp)],
            capture_output=True,
            text=True,
            check=False,
        )
        if made.returncode != 0:
            raise VenvBuildError(
                f"python -m venv failed: {(made.stderr or made.stdout).strip()[-2000:]}"
            )
        # Kept inside the venv: an operator can see what a venv holds and why it exists.
        req_file = tmp / "requirements.txt"
        req_file.write_text(requirements if requirements.endswith("\n") else requirements + "\n")
        progress("installing requirements.txt")
        command = [
            str(_python(tmp)),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "-r",
            str(req_file),
            *self.pip_args,
        ]
        code, tail = self._run(command, tmp, progress)
        if code != 0:
            raise RequirementsFailed("requirements.txt could not be installed", tail)
        _point_scripts_at(tmp, target)

    def _run(
        self, command: list[str], cwd: Path, progress: Callable[[str], None]
    ) -> tuple[int, list[str]]:
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=pip_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            proc.kill()

        watchdog = threading.Timer(self.timeout, kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip()
                if line:
                    tail.append(line)
                    progress(line)
            code = proc.wait()
        finally:
            watchdog.cancel()
        if timed_out.is_set():
            tail.append(f"pip did not finish within {self.timeout:g} s and was stopped")
            code = code or 1
        return code, list(tail)


def _python(venv: Path) -> Path:
    return venv / _BIN / "python"


def _ignore(_: str) -> None:
    pass


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    # flock is held per open file, so threads of one process exclude each other as well.
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _point_scripts_at(tmp: Path, target: Path) -> None:
    """Make the venv's scripts name the directory the venv is renamed to.

    ``pip`` writes the absolute path of the interpreter into the first line of every console
    script it installs (and ``activate`` holds the venv's path); after the rename they would
    point at the vanished temporary directory.
    """
    renames = {
        str(tmp).encode(): str(target).encode(),
        str(tmp.resolve()).encode(): str(target.parent.resolve() / target.name).encode(),
    }
    files = [p for p in (tmp / _BIN).iterdir() if p.is_file() and not p.is_symlink()]
    for path in [*files, tmp / "pyvenv.cfg"]:
        data = original = path.read_bytes() if path.is_file() else b""
        for old, new in renames.items():
            data = data.replace(old, new)
        if data != original:
            path.write_bytes(data)
