"""Code that lives inside a worker's process: bootstrap, channel and the two SDKs.

Everything here runs under the worker's interpreter (Python 3.9+, perhaps a bare virtualenv),
so it imports the standard library only and nothing of the server. The parent starts
``python <BOOTSTRAP> main.py``; see docs/workers.md for the contract.

- ``bootstrap.py``: sets up ``sdk`` / ``runyard.sdk`` and runs ``main.py``;
- ``channel.py``: the buffered pipe to the parent;
- ``coreclaw.py``: CoreClaw's ``CoreSDK``, for ``from sdk import CoreSDK``;
- ``sdk.py``: Runyard's own SDK, ``from runyard import sdk``.
"""

from __future__ import annotations

import os

#: The script the parent runs with the worker's interpreter.
BOOTSTRAP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bootstrap.py")

__all__ = ["BOOTSTRAP"]
