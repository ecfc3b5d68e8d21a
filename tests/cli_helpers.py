"""Running the ``runyard`` command against a test server, as a user types it."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runyard.cli import app
from tests.conftest import Server, User

runner = CliRunner()

#: A worker that pushes its input back as its only row.
ECHO = """
from runyard import sdk
sdk.push(sdk.input())
"""


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def ry(*args: str, input: str | None = None) -> Outcome:
    """``runyard ARGS…`` in-process; exit code, stdout and stderr."""
    result = runner.invoke(app, list(args), input=input)
    return Outcome(result.exit_code, result.stdout, result.stderr)


def remote(server: Server, user: User, *args: str, input: str | None = None) -> Outcome:
    """``runyard ARGS… --base-url URL --api-key KEY``."""
    return ry(*args, "--base-url", server.url, "--api-key", user.key, input=input)


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No profile, key or server from the developer's own environment; the config directory
    that ``runyard login`` writes to (``$XDG_CONFIG_HOME/runyard``)."""
    for name in ("RUNYARD_BASE_URL", "RUNYARD_API_KEY", "RUNYARD_PROFILE", "RUNYARD_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "runyard"


def package(root: Path, main: str, files: dict[str, str] | None = None) -> Path:
    """A worker package directory: ``main.py``, empty schemas, and ``files`` over them."""
    root.mkdir(parents=True)
    (root / "main.py").write_text(textwrap.dedent(main))
    (root / "input_schema.json").write_text('{"properties": []}')
    (root / "output_schema.json").write_text("[]")
    for name, text in (files or {}).items():
        (root / name).write_text(textwrap.dedent(text))
    return root
