"""What the worker sandbox costs a run's start: ``RUNYARD_SANDBOX=bwrap`` next to ``none``.

    .venv/bin/python benchmarks/sandbox.py              # 20 runs each
    .venv/bin/python benchmarks/sandbox.py --runs 50

Two ``runyard serve`` on loopback, one per mode, each with an empty worker; runs alternate
between them, one at a time, each timed from ``POST /workers/{id}/runs`` until the run reads
``succeeded`` (polled every 5 ms). Then the process alone, without the server: the median time
to spawn ``python -c pass`` through the sandbox's command line and directly. Prints the medians
and the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from runyard.execution import sandbox
from runyard.settings import Settings

RUNYARD = [sys.executable, "-m", "runyard"]
POLL = 0.005
MODES = ("bwrap", "none")


def _cli(*args: str) -> str:
    return subprocess.run(
        [*RUNYARD, *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Side:
    """One ``runyard serve`` with one user and the empty worker ``empty``."""

    def __init__(self, root: Path, mode: str) -> None:
        self.mode = mode
        data_dir = root / mode
        package = root / f"empty-{mode}"
        package.mkdir()
        (package / "main.py").write_text("")
        (package / "input_schema.json").write_text('{"properties": []}')
        (package / "output_schema.json").write_text("[]")
        _cli("users", "create", "bench", "--data-dir", str(data_dir))
        key = _cli("keys", "create", "--user", "bench", "--data-dir", str(data_dir))
        _cli("workers", "add", str(package), "--user", "bench", "--slug", "empty",
             "--data-dir", str(data_dir))  # fmt: skip
        port = _port()
        self.server = subprocess.Popen(
            [*RUNYARD, "serve", "--port", str(port), "--data-dir", str(data_dir)],
            env={**os.environ, "RUNYARD_SANDBOX": mode, "RUNYARD_RATE_LIMIT": "0"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api/v2",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client.get("/worker-runs")
                break
            except httpx.TransportError:
                if self.server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"runyard serve ({mode}) did not start") from None
                time.sleep(0.1)

    def run(self) -> float:
        """Seconds from the POST to ``succeeded``."""
        started = time.perf_counter()
        reply = self.client.post("/workers/empty/runs", json={})
        run = reply.json()["data"]["run_slug"]
        while True:
            status = self.client.get(f"/worker-runs/{run}").json()["data"]["status"]
            if status == "succeeded":
                return time.perf_counter() - started
            if status == "failed":
                raise SystemExit(f"a run failed under RUNYARD_SANDBOX={self.mode}")
            time.sleep(POLL)

    def close(self) -> None:
        self.client.close()
        self.server.terminate()
        self.server.wait(10)


def spawn_times(root: Path, runs: int) -> dict[str, list[float]]:
    """``python -c pass`` through the sandbox's command line, and directly."""
    settings = Settings(data_dir=root / "spawn")
    scratch = settings.runs_dir / "bench"
    (scratch / "work").mkdir(parents=True)
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    argv = [sys.executable, "-c", "pass"]
    for _ in range(runs):
        for mode in MODES:
            command = argv
            read_fd, write_fd = os.pipe()
            if mode == "bwrap":
                command = sandbox.command(
                    settings, argv, scratch=scratch, workdir=scratch / "work", info_fd=write_fd
                )
                sandbox.hand_over(scratch)
            started = time.perf_counter()
            subprocess.run(command, check=True, pass_fds=(write_fd,), cwd=scratch / "work")
            times[mode].append(time.perf_counter() - started)
            os.close(read_fd)
            os.close(write_fd)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per mode (default 20)")
    args = parser.parse_args()
    sandbox.check(Settings())
    root = Path(tempfile.mkdtemp(prefix="runyard-sandbox-bench-"))
    try:
        sides = [Side(root, mode) for mode in MODES]
        try:
            for side in sides:
                side.run()  # warm-up, not counted
            runs: dict[str, list[float]] = {mode: [] for mode in MODES}
            for _ in range(args.runs):
                for side in sides:
                    runs[side.mode].append(side.run())
        finally:
            for side in sides:
                side.close()
        spawn = spawn_times(root, args.runs)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    who = "root: workers run as nobody" if sandbox.drops_privileges() else "not root"
    print(f"worker sandbox, {args.runs} runs per mode, server {who}")
    for title, samples in (
        ("POST → succeeded, empty worker", runs),
        ("spawn python -c pass", spawn),
    ):
        bwrap, none = (statistics.median(samples[mode]) * 1000 for mode in MODES)
        print(
            f"  {title}: bwrap {bwrap:.1f} ms, none {none:.1f} ms median; "
            f"+{bwrap - none:.1f} ms, ratio {bwrap / none:.2f}"
        )


if __name__ == "__main__":
    main()
