"""The link-signing key: generated once, private, and never weak."""

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
