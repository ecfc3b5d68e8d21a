"""The ``runyard`` command."""

from runyard.cli.main import app, main

__all__ = ["app", "main"]
