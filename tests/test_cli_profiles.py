"""``runyard login``/``logout``, the config file, and which server and key a command uses."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from runyard.cli import profiles
from tests.cli_helpers import isolate, ry
from tests.conftest import Server, User


@pytest.fixture
def config_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    return isolate(monkeypatch, tmp_path)


def login(server: Server, user: User, *args: str) -> tuple[int, str]:
    result = ry("login", "--base-url", server.url, "--api-key", user.key, *args)
    assert user.key not in result.text  # a key is never printed
    return result.code, result.err


def test_login_writes_a_private_config_and_profiles_work_alone(
    server: Server, user: User, config_dir: Path
) -> None:
    code, err = login(server, user, "--profile", "work")
    assert code == 0, err
    path = config_dir / "config.json"  # typer.get_app_dir honours XDG_CONFIG_HOME
    assert f"saved profile 'work' (the default) in {path}" in err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "default_profile": "work",  # the first profile saved is the default
        "profiles": {"work": {"base_url": server.url, "api_key": user.key}},
    }
    assert [p.name for p in config_dir.iterdir()] == ["config.json"]  # no temp file left

    run = server.run(user, [{"a": 1}])
    by_name = ry("runs", "show", "--json", "--profile", "work")
    assert by_name.code == 0, by_name
    assert json.loads(by_name.out)["slug"] == run
    by_default = ry("results", "--json")  # no option at all: the default profile
    assert json.loads(by_default.out) == [{"a": 1}]


def test_a_second_profile_is_not_default_unless_asked(
    server: Server, user: User, config_dir: Path
) -> None:
    other = server.user()
    assert login(server, user)[0] == 0
    assert login(server, other, "--profile", "other")[0] == 0
    config = json.loads((config_dir / "config.json").read_text())
    assert config["default_profile"] == "default" and set(config["profiles"]) == {
        "default",
        "other",
    }
    server.run(other, [{"who": "other"}])
    assert json.loads(ry("results", "--json", "--profile", "other").out) == [{"who": "other"}]
    assert login(server, other, "--profile", "other", "--default")[0] == 0
    assert json.loads((config_dir / "config.json").read_text())["default_profile"] == "other"
    assert json.loads(ry("results", "--json").out) == [{"who": "other"}]


def test_login_asks_for_the_key_without_echoing_it(
    server: Server, user: User, config_dir: Path
) -> None:
    result = ry("login", "--base-url", server.url, input=user.key + "\n")
    assert result.code == 0, result
    assert "API key for" in result.err and user.key not in result.text
    saved = json.loads((config_dir / "config.json").read_text())
    assert saved["profiles"]["default"]["api_key"] == user.key


def test_a_bad_key_saves_nothing(server: Server, config_dir: Path) -> None:
    result = ry("login", "--base-url", server.url, "--api-key", "ry_wrong")
    assert result.code == 1 and result.out == ""
    assert result.err.startswith("error 12002: invalid token (request req-")
    assert len(result.err.strip().splitlines()) == 1
    assert not (config_dir / "config.json").exists()


def test_logout_removes_a_profile(server: Server, user: User, config_dir: Path) -> None:
    assert login(server, user, "--profile", "a")[0] == 0
    assert login(server, user, "--profile", "b")[0] == 0
    result = ry("logout", "--profile", "b")
    assert result.code == 0 and "removed profile 'b'" in result.err
    assert set(json.loads((config_dir / "config.json").read_text())["profiles"]) == {"a"}
    gone = ry("logout")  # the default, a
    assert gone.code == 0 and "no default profile now" in gone.err
    assert json.loads((config_dir / "config.json").read_text()) == {
        "default_profile": None,
        "profiles": {},
    }
    assert ry("logout", "--profile", "a").err.strip() == "error: no profile 'a' to remove"


def test_an_unknown_profile_is_one_line(server: Server, user: User, config_dir: Path) -> None:
    assert login(server, user, "--profile", "work")[0] == 0
    result = ry("runs", "list", "--profile", "nope")
    assert result.code == 1 and result.out == ""
    assert result.err.strip() == "error: unknown profile 'nope' (from --profile); profiles: work"


def test_a_broken_config_is_one_line(config_dir: Path) -> None:
    config_dir.mkdir(parents=True)
    (config_dir / "config.json").write_text("{not json")
    result = ry("runs", "list")
    assert result.code == 1
    assert result.err.startswith(f"error: cannot read {config_dir / 'config.json'}: ")
    assert len(result.err.strip().splitlines()) == 1


def test_runyard_config_dir_comes_first(
    server: Server, user: User, config_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_CONFIG_DIR", str(tmp_path / "elsewhere"))
    assert login(server, user)[0] == 0
    assert (tmp_path / "elsewhere" / "config.json").is_file()
    assert not config_dir.exists()


# The resolution order, field by field


def _write(config_dir: Path, default: str | None, **entries: tuple[str, str]) -> None:
    profiles.save(
        profiles.Config(
            default, {n: profiles.Profile(url, key) for n, (url, key) in entries.items()}
        )
    )


def test_resolution_order(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    resolve = profiles.resolve
    assert resolve(None, None, None) == ("http://127.0.0.1:8000", None)  # nothing anywhere
    _write(config_dir, "home", home=("http://home:1", "k-home"), work=("http://work:2", "k-work"))
    assert resolve(None, None, None) == ("http://home:1", "k-home")  # the default profile
    monkeypatch.setenv("RUNYARD_PROFILE", "work")
    assert resolve(None, None, None) == ("http://work:2", "k-work")  # RUNYARD_PROFILE
    monkeypatch.setenv("RUNYARD_API_KEY", "k-env")
    # The environment's key never goes to a server named by a profile: its own key does.
    assert resolve(None, None, None) == ("http://work:2", "k-work")
    monkeypatch.setenv("RUNYARD_BASE_URL", "http://env:3")
    assert resolve(None, None, None) == ("http://env:3", "k-env")
    assert resolve(None, None, "home") == ("http://home:1", "k-home")  # --profile beats env
    assert resolve("http://cli:4", "k-cli", "home") == ("http://cli:4", "k-cli")  # options win
    monkeypatch.setenv("RUNYARD_PROFILE", "gone")
    with pytest.raises(ValueError, match="unknown profile 'gone' \\(from RUNYARD_PROFILE\\)"):
        resolve(None, None, None)


def test_a_profiles_key_goes_only_to_its_own_server(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(config_dir, "home", home=("http://home:1", "k-home"))
    assert profiles.resolve("http://other:9", None, None) == ("http://other:9", None)
    assert profiles.resolve("http://other:9", None, "home") == ("http://other:9", None)
    # The same server however its address is spelled.
    assert profiles.resolve("http://home:1/api/v2/", None, "home")[1] == "k-home"
    monkeypatch.setenv("RUNYARD_BASE_URL", "http://other:9")
    assert profiles.resolve(None, None, None) == ("http://other:9", None)


def test_the_environments_key_goes_only_to_a_server_not_from_a_profile(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(config_dir, "home", home=("http://home:1", ""))
    monkeypatch.setenv("RUNYARD_API_KEY", "k-env")
    assert profiles.resolve(None, None, "home") == ("http://home:1", None)
    assert profiles.resolve(None, None, None) == ("http://home:1", None)
    assert profiles.resolve("http://cli:4", None, None) == ("http://cli:4", "k-env")


def test_explicit_options_need_no_config(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_dir.mkdir(parents=True)
    (config_dir / "config.json").write_text("{not json")
    monkeypatch.setenv("RUNYARD_PROFILE", "gone")
    assert profiles.resolve("http://cli:4", "k", None) == ("http://cli:4", "k")


def test_login_refuses_a_blank_key(server: Server, config_dir: Path) -> None:
    result = ry("login", "--base-url", server.url, input="   \n")
    assert result.code == 1 and "no API key given" in result.err
    assert not (config_dir / "config.json").exists()


def test_a_key_a_header_cannot_carry_is_refused_without_echoing_it(server: Server) -> None:
    result = ry("runs", "list", "--base-url", server.url, "--api-key", "ry_SECRET\nX")
    assert result.code == 1 and "ry_SECRET" not in result.text
    assert result.err.strip() == (
        "error: the API key holds spaces or characters an HTTP header cannot carry"
    )
