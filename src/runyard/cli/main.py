"""``runyard``: serve the API and administer a data directory, or work with a server through
its API (runs, results, exports, workers, tasks).

Results go to stdout (a key, a run id, a path, JSON, tables) so they can be captured; messages
go to stderr. Every refusal is one line on stderr and exit code 1 — never a traceback.
"""

from __future__ import annotations

import importlib

from runyard.cli.app import app

__all__ = ["app", "main"]

# Importing a command module registers its commands on ``app``, in this order in --help.
for _module in ("runs", "workers", "tasks", "account", "admin", "node"):
    importlib.import_module(f"runyard.cli.{_module}")


def main() -> None:
    app()
