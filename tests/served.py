"""``runyard serve`` in a subprocess, for tests that need a real process of its own: killed
with ``kill -9``, its output read, its environment looked for."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SERVE = [sys.executable, "-m", "runyard", "serve"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Served:
    """``runyard serve --data-dir DATA_DIR`` on loopback, started and answering.

    ``output``: a directory its stdout and stderr are written to (``stop`` returns them);
    without one they are dropped. ``port``: to start it again where it was.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        output: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = output / "stdout.txt" if output else None
        self.err = output / "stderr.txt" if output else None
        argv = [*SERVE, "--data-dir", str(data_dir), "--port", str(self.port)]
        environ = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        if self.out and self.err:
            with open(self.out, "wb") as out, open(self.err, "wb") as err:
                self.proc = subprocess.Popen(argv, stdout=out, stderr=err, env=environ)
        else:
            self.proc = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environ
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.url}/api/v2/proxy/region", timeout=1)
                return
            except httpx.TransportError:
                assert self.proc.poll() is None, f"runyard serve exited: {self.output()}"
                assert time.monotonic() < deadline, "runyard serve did not start"
                time.sleep(0.1)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """``kill -9``, and wait for it to be gone (nothing if it is gone already)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> str:
        """Stop it as Ctrl-C does; everything it wrote (when ``output`` was given)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.output()

    def output(self) -> str:
        return "".join(
            path.read_text(errors="replace") for path in (self.out, self.err) if path is not None
        )
