"""Runyard's worker SDK, ``from runyard import sdk``: see ``runyard.runtime.sdk``.

Inside a run the bootstrap registers ``runyard.runtime.sdk`` itself as ``runyard.sdk``; this
module makes the same names importable (and type-checkable) wherever Runyard is installed.
"""

from __future__ import annotations

from runyard.runtime.sdk import flush, input, log, push, push_many, set_headers, upsert

__all__ = ["flush", "input", "log", "push", "push_many", "set_headers", "upsert"]
