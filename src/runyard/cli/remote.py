"""What every command talking to a server shares: its options and ``connect``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import httpx
import typer

from runyard.cli import profiles
from runyard.cli.app import fail
from runyard.client import ApiError, Client, WaitTimeout

SERVER = "Server"

BaseUrl = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="Server address, e.g. http://127.0.0.1:8000 (default: the profile's, "
        "else RUNYARD_BASE_URL).",
        rich_help_panel=SERVER,
        show_default=False,
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="API key (default: the profile's, else RUNYARD_API_KEY).",
        rich_help_panel=SERVER,
        show_default=False,
    ),
]
ProfileName = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help="A profile saved by `runyard login` (default: RUNYARD_PROFILE, else the "
        "default profile).",
        rich_help_panel=SERVER,
        show_default=False,
    ),
]
RunId = Annotated[
    str,
    typer.Argument(metavar="RUN", help="A run id, or last: your newest run.", show_default=True),
]
WorkerId = Annotated[
    str, typer.Argument(metavar="WORKER", help="The worker: its slug, or owner~slug.")
]
WorkerOfRun = Annotated[
    str | None,
    typer.Option("--worker", "-w", help="The newest run of this worker (instead of RUN)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]


def one_run(run: str, worker: str | None) -> None:
    """Refuse RUN and --worker together: each names a run."""
    if worker is not None and run != "last":
        fail("give RUN or --worker, not both")


def describe(exc: ApiError) -> tuple[str, str]:
    """``(prefix, message)`` of the one line an API refusal prints."""
    prefix = f"error {exc.code}" if exc.code else f"error HTTP {exc.status_code}"
    message = exc.message
    if exc.details:
        message += ": " + "; ".join(exc.details)
    if exc.request_id:
        message += f" (request {exc.request_id})"
    return prefix, message


@contextmanager
def connect(base_url: str | None, api_key: str | None, profile: str | None) -> Iterator[Client]:
    """A client for the resolved server and key. Whatever goes wrong inside ends the command
    with one line on stderr and exit code 1, never a traceback."""
    url = base_url or profiles.DEFAULT_BASE_URL
    prefix = "error"
    try:
        url, key = profiles.resolve(base_url, api_key, profile)
        with Client(url, key) as client:
            yield client
        return
    except ApiError as exc:
        prefix, message = describe(exc)
    except WaitTimeout as exc:
        message = f"{exc}; the run goes on (see `runyard runs show {exc.run.slug}`)"
    except httpx.TransportError as exc:
        message = f"cannot reach {profiles.server_root(url)}: {exc or type(exc).__name__}"
    except OSError as exc:  # a file that cannot be read or written
        message = f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc)
    except ValueError as exc:  # refused before sending: a bad URL, id, package or profile
        message = str(exc)
    # One line even when a reply's message or a parser's error spans several.
    fail(" ".join(line.strip() for line in message.splitlines() if line.strip()), prefix)
