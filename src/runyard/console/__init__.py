"""The web console at ``/``: server-rendered pages over ``runyard.services``, no build step."""

from runyard.console.app import mount

__all__ = ["mount"]
