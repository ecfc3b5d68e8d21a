"""Workers' virtualenvs: built once per distinct requirements.txt, isolated, never half-made."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from runyard.execution.venvs import RequirementsFailed, VenvBuilder


def _run(python: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)


def test_a_venv_is_built_once_shared_and_sees_only_its_requirements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A relative data directory (the default) still hands out a path usable from anywhere.
    monkeypatch.chdir(tmp_path)
    builder = VenvBuilder(Path("venvs"))
    logs: list[list[str]] = [[], []]
    pythons: list[str] = ["", ""]

    def build(i: int) -> None:
        pythons[i] = builder.python_for("six==1.16.0\n", on_progress=logs[i].append)

    # Two registrations of workers with the same requirements at once: one build, one venv.
    threads = [threading.Thread(target=build, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert pythons[0] == pythons[1] != sys.executable
    builds = [log for log in logs if any(line.startswith("creating virtualenv") for line in log)]
    assert len(builds) == 1
    assert any("Successfully installed six-1.16.0" in line for line in builds[0])

    python = pythons[0]
    assert Path(python).is_absolute()
    venv = Path(python).parent.parent
    assert venv.parent == tmp_path / "venvs"
    assert _run(python, "import six; print(six.__version__)").stdout.strip() == "1.16.0"
    for server_package in ("fastapi", "runyard"):
        result = _run(python, f"import {server_package}")
        assert result.returncode != 0
        assert "ModuleNotFoundError" in result.stderr
    # Scripts written while the venv sat in its temporary directory work after the rename.
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "--version"], capture_output=True, text=True, timeout=60
    )
    assert pip.returncode == 0 and str(venv) in pip.stdout

    # Same requirements written differently: the same venv, at once, without pip.
    started = time.monotonic()
    again: list[str] = []
    same = builder.python_for("# pinned\n\nsix==1.16.0   # for py2/3\n", on_progress=again.append)
    assert same == python
    assert time.monotonic() - started < 1
    assert not any("creating virtualenv" in line for line in again)
    assert sorted(
        p.name for p in (tmp_path / "venvs").iterdir() if not p.name.endswith(".lock")
    ) == [venv.name]


@pytest.mark.parametrize("requirements", [None, "", "  \n", "# nothing needed\n"])
def test_no_requirements_means_the_servers_interpreter(
    tmp_path: Path, requirements: str | None
) -> None:
    builder = VenvBuilder(tmp_path / "venvs")
    assert builder.python_for(requirements) == sys.executable
    assert not (tmp_path / "venvs").exists()


def test_a_failed_install_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    builder = VenvBuilder(tmp_path / "venvs")
    with pytest.raises(RequirementsFailed) as caught:
        builder.python_for("six==999.0.0\n")
    assert caught.value.message == "requirements.txt could not be installed"
    details = caught.value.details or []
    assert 0 < len(details) <= 20
    assert any("No matching distribution found for six==999.0.0" in line for line in details)
    left = [p.name for p in (tmp_path / "venvs").iterdir() if not p.name.endswith(".lock")]
    assert left == []
