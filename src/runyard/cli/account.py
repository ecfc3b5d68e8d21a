"""Who you are on a server: ``login`` and ``logout`` (profiles), and ``account``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from runyard.cli import profiles, render
from runyard.cli.app import app, emit_json, err, fail, out
from runyard.cli.remote import ApiKey, AsJson, BaseUrl, ProfileName, connect


def _load() -> profiles.Config:
    try:
        return profiles.load()
    except ValueError as exc:
        fail(str(exc))


def _save(config: profiles.Config) -> Path:
    try:
        return profiles.save(config)
    except OSError as exc:
        fail(f"cannot write {profiles.config_path()}: {exc.strerror or exc}")


@app.command()
def login(
    profile: Annotated[
        str, typer.Option("--profile", help="The name to save the server and key under.")
    ] = profiles.DEFAULT_PROFILE,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="Server address (default: the profile's, else RUNYARD_BASE_URL, else "
            f"{profiles.DEFAULT_BASE_URL}).",
            show_default=False,
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", help="API key (default: asked for, not echoed).", show_default=False
        ),
    ] = None,
    make_default: Annotated[
        bool, typer.Option("--default", help="Make this the default profile.")
    ] = False,
) -> None:
    """Check an API key against a server and save both as a profile.

    The first profile saved becomes the default one.
    """
    config = _load()
    known = config.profiles.get(profile)
    url = (
        base_url
        or (known.base_url if known else None)
        or os.environ.get("RUNYARD_BASE_URL")
        or profiles.DEFAULT_BASE_URL
    )
    key = (api_key or typer.prompt(f"API key for {url}", hide_input=True, err=True)).strip()
    if not key:
        fail("no API key given: nothing saved")
    # The key checked is the key saved: no profile or environment variable may stand in for it.
    with connect(url, key, None) as client:
        client.get_account()  # a bad key stops here, with nothing saved
    config.profiles[profile] = profiles.Profile(profiles.server_root(url), key)
    if make_default or config.default_profile not in config.profiles:
        config.default_profile = profile
    path = _save(config)
    default = " (the default)" if config.default_profile == profile else ""
    err.print(f"logged in to {url}; saved profile {profile!r}{default} in {path}", markup=False)


@app.command()
def logout(
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile", help="The profile to remove (default: RUNYARD_PROFILE, else the default)."
        ),
    ] = None,
) -> None:
    """Remove a saved profile and its key."""
    config = _load()
    name = profile or os.environ.get("RUNYARD_PROFILE") or config.default_profile
    if name is None or name not in config.profiles:
        fail(f"no profile {name!r} to remove" if name else "no profile to remove")
    del config.profiles[name]
    note = ""
    if config.default_profile == name:
        # Never silently point the default at another server: the user picks one.
        config.default_profile = None
        note = " (there is no default profile now: `runyard login --default` sets one)"
    _save(config)
    err.print(f"removed profile {name!r}{note}", markup=False)


@app.command()
def account(
    as_json: AsJson = False,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    profile: ProfileName = None,
) -> None:
    """Show your account: the credit left."""
    with connect(base_url, api_key, profile) as client:
        acct = client.get_account()
    if as_json:
        emit_json(acct.model_dump(mode="json"))
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_row(Text("balance", style="bold"), Text(acct.balance))
    if acct.balance_expiration_at:
        grid.add_row(Text("expires (UTC)", style="bold"), render.when(acct.balance_expiration_at))
    out.print(grid)
