"""Settings: the link-signing key (generated once, private, never weak) and where files go."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from runyard.settings import Settings


def test_key_is_generated_once_and_private(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).resolved_secret_key()
    assert len(first) == 64
    assert Settings(data_dir=tmp_path).resolved_secret_key() == first
    mode = (tmp_path / "secret.key").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]  # no temporary file left


@pytest.mark.parametrize("content", ["", "short"])
def test_a_weak_stored_key_is_refused_not_used(tmp_path: Path, content: str) -> None:
    (tmp_path / "secret.key").write_text(content)
    with pytest.raises(ValueError, match="at least 32"):
        Settings(data_dir=tmp_path).resolved_secret_key()


def test_a_weak_configured_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_SECRET_KEY", "too-short")
    with pytest.raises(ValueError, match="at least 32"):
        Settings(data_dir=tmp_path).resolved_secret_key()
    monkeypatch.setenv("RUNYARD_SECRET_KEY", "k" * 40)
    assert Settings(data_dir=tmp_path).resolved_secret_key() == b"k" * 40
    assert "k" * 40 not in repr(Settings(data_dir=tmp_path))


def test_servers_sharing_a_directory_sign_links_alike(tmp_path: Path) -> None:
    """Two API servers with their own data directories and one shared directory: a link one
    signs, the other accepts; packages and export files land where both see them."""
    shared = tmp_path / "shared"
    one = Settings(data_dir=tmp_path / "one", shared_dir=shared)
    two = Settings(data_dir=tmp_path / "two", shared_dir=shared)
    assert one.resolved_secret_key() == two.resolved_secret_key()
    assert (shared / "secret.key").exists()
    assert one.files_dir == two.files_dir == shared / "files"
    assert one.packages_dir == two.packages_dir == shared / "workers"
    assert one.resolved_venvs_dir == shared / "venvs"
    # What is a process's own stays apart: its runs' scratch space and its executor's name.
    assert one.runs_dir != two.runs_dir
    assert one.resolved_executor_name() != two.resolved_executor_name()


def test_database_and_broker_passwords_never_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_DATABASE_URL", "postgresql://runyard:hunter2@db/runyard")
    monkeypatch.setenv("RUNYARD_BROKER_URL", "redis://:hunter2@redis:6379/0")
    settings = Settings(data_dir=tmp_path)
    assert "hunter2" not in repr(settings)
    assert settings.resolved_database_url == "postgresql://runyard:hunter2@db/runyard"
