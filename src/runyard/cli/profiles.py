"""Profiles: named servers and keys in ``config.json`` under the user's config directory, and
which server and key a command uses."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_PROFILE = "default"


@dataclass(frozen=True)
class Profile:
    base_url: str
    api_key: str | None = None


@dataclass
class Config:
    default_profile: str | None
    profiles: dict[str, Profile]


def config_dir() -> Path:
    """``RUNYARD_CONFIG_DIR``, else the platform's config directory for runyard
    (``$XDG_CONFIG_HOME/runyard``, by default ``~/.config/runyard``, on Linux)."""
    given = os.environ.get("RUNYARD_CONFIG_DIR")
    return Path(given) if given else Path(typer.get_app_dir("runyard"))


def config_path() -> Path:
    return config_dir() / "config.json"


def load() -> Config:
    """The config file; an empty config when there is none. ``ValueError`` if unreadable."""
    path = config_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Config(None, {})
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    profiles = raw.get("profiles") if isinstance(raw, dict) else None
    if not isinstance(profiles, dict):
        raise ValueError(f"cannot read {path}: no profiles object")
    parsed = {}
    for name, entry in profiles.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("base_url"), str):
            raise ValueError(f"cannot read {path}: profile {name!r} has no base_url")
        key = entry.get("api_key")
        if key is not None and not isinstance(key, str):
            raise ValueError(
                f"cannot read {path}: profile {name!r} has an api_key that is not text"
            )
        parsed[name] = Profile(entry["base_url"], key or None)
    default = raw.get("default_profile")
    return Config(default if isinstance(default, str) else None, parsed)


def save(config: Config) -> Path:
    """Write the config readable by its owner only, atomically: a reader never sees half."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data: dict[str, Any] = {
        "default_profile": config.default_profile,
        "profiles": {
            name: {"base_url": p.base_url, "api_key": p.api_key}
            for name, p in sorted(config.profiles.items())
        },
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".tmp")
    try:
        # mkstemp creates the file 0600 already; say so explicitly, the file holds keys.
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def server_root(url: str) -> str:
    """A base URL without its trailing ``/`` and ``/api/v2``: both spellings name one server."""
    url = url.rstrip("/")
    return url.removesuffix("/api/v2")


def resolve(
    base_url: str | None, api_key: str | None, profile: str | None
) -> tuple[str, str | None]:
    """The server and key to use, field by field: ``--base-url``/``--api-key``, then
    ``--profile``, then ``RUNYARD_BASE_URL``/``RUNYARD_API_KEY``, then the profile named by
    ``RUNYARD_PROFILE`` or the config's default, then the local server with no key.

    A profile's key is only ever sent to that profile's own server, and the environment's key
    never to a server that came from a profile.
    """
    if base_url and api_key:
        return base_url, api_key  # nothing to look up: a broken config must not stand in the way
    env_url = os.environ.get("RUNYARD_BASE_URL") or None
    env_key = os.environ.get("RUNYARD_API_KEY") or None
    chosen: Profile | None = None
    fallback: Profile | None = None
    if profile is not None:
        chosen = _named(profile, "--profile")
    else:
        from_env = os.environ.get("RUNYARD_PROFILE") or None
        if from_env is not None:
            fallback = _named(from_env, "RUNYARD_PROFILE")
        else:
            config = load()
            if config.default_profile is not None:
                fallback = config.profiles.get(config.default_profile)

    profile_url = (chosen.base_url if chosen else None) if not base_url else None
    url = (
        base_url
        or profile_url
        or env_url
        or (fallback.base_url if fallback else None)
        or DEFAULT_BASE_URL
    )
    from_profile = profile_url is not None or (
        not base_url and not env_url and fallback is not None
    )
    key = (
        api_key
        or _key_for(chosen, url)
        or (None if from_profile else env_key)
        or _key_for(fallback, url)
    )
    return url, key


def _named(name: str, source: str) -> Profile:
    config = load()
    found = config.profiles.get(name)
    if found is None:
        known = ", ".join(sorted(config.profiles)) or "none; see `runyard login`"
        raise ValueError(f"unknown profile {name!r} (from {source}); profiles: {known}")
    return found


def _key_for(profile: Profile | None, url: str) -> str | None:
    if profile is None or server_root(profile.base_url) != server_root(url):
        return None
    return profile.api_key
