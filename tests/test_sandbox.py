"""The worker sandbox (``RUNYARD_SANDBOX=bwrap``, the default): a worker cannot read the
server's database, its secrets, exports or other runs' files, nor the server's environment;
its whole process tree dies with its run and with the server; and without a working bwrap the
server refuses to start."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from runyard.execution import sandbox
from runyard.execution.process import kill_runs, run_processes
from runyard.services import Services
from runyard.services.packages import load_package
from runyard.settings import Settings
from runyard.storage import Run
from tests.conftest import (
    POSTGRES_PROBLEM,
    Databases,
    Server,
    User,
    process_alive,
    start,
    wait_for,
)
from tests.served import Served, free_port

#: Set on the server process only: no worker may find these anywhere.
CANARY_KEY = "canary-secret-key-0123456789abcdef0123456789"
CANARY = "canary-value-of-the-server-environment"

#: Tries each thing it is given, one row each: ``{"what", "ok", "detail"}``.
PROBER = r"""
import glob, os, ssl, urllib.request
from runyard import sdk

params = sdk.input()


def attempt(what, action):
    try:
        result = action()
    except Exception as exc:
        sdk.push({"what": what, "ok": False, "detail": f"{type(exc).__name__}: {exc}"})
    else:
        sdk.push({"what": what, "ok": True, "detail": repr(result)[:300]})


def read(path):
    with open(path, "rb") as f:
        return f.read(100)


def canary():
    looked, found = 0, []
    for path in glob.glob("/proc/*/environ"):
        try:
            environ = read_all(path)
        except OSError:
            continue
        looked += 1
        if b"RUNYARD_TEST_CANARY=" in environ or b"RUNYARD_SECRET_KEY=" in environ:
            found.append(path)
    if not found:
        raise LookupError(f"no canary in the {looked} environments readable")
    return found


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def write_then_read(directory):
    path = os.path.join(directory, "probe.txt")
    with open(path, "w") as f:
        f.write("written")
    with open(path) as f:
        return f.read()


def data_dir():
    found = os.listdir(params["data_dir"])
    if "runyard.db" not in found:
        raise LookupError(f"the data directory shows only {found}")
    return found


attempt("database", lambda: read(params["database"]))
attempt("secret.key", lambda: read(params["secret_key"]))
attempt("export", lambda: read(params["export"]))
attempt("other run", lambda: read(params["marker"]))
attempt("data dir", data_dir)
attempt("canary", canary)
attempt("server environ", lambda: read(f"/proc/{params['server_pid']}/environ"))
attempt("own input", lambda: read(os.environ["RUNYARD_INPUT"]))
attempt("write cwd", lambda: write_then_read(os.getcwd()))
attempt("write TMPDIR", lambda: write_then_read(os.environ["TMPDIR"]))
attempt("write /tmp", lambda: write_then_read("/tmp"))
attempt("loopback", lambda: urllib.request.urlopen(params["url"], timeout=10).status)
attempt("uid", os.getuid)
attempt("tmp is scratch", lambda: os.path.samefile("/tmp", os.environ["TMPDIR"]))
attempt("shm bytes", lambda: os.statvfs("/dev/shm").f_blocks * os.statvfs("/dev/shm").f_frsize)
attempt("tls roots", lambda: ssl.create_default_context().cert_store_stats()["x509_ca"])
attempt("tls private keys", lambda: os.listdir("/etc/ssl/private"))
"""

#: Another run: leaves a file in its working directory, says where, and waits.
MARKER = """
import os, time
from runyard import sdk

with open("marker.txt", "w") as f:
    f.write("another run's file")
sdk.push({"marker": os.path.abspath("marker.txt")})
sdk.flush()
time.sleep(120)
"""

#: A child that leaves the run's process group (it survived an abort before the sandbox).
SPAWNER = """
import subprocess, time
from runyard import sdk

subprocess.Popen(["sleep", "300"], start_new_session=True)
sdk.push({"child": "started"})
sdk.flush()
time.sleep(300)
"""


EDITORS = {"string": "input", "integer": "number"}
#: The prober's fields.
PROBER_FIELDS = {
    "database": "string",
    "secret_key": "string",
    "export": "string",
    "marker": "string",
    "data_dir": "string",
    "server_pid": "integer",
    "url": "string",
}


def _package(root: Path, name: str, main: str, fields: dict[str, str] | None = None) -> Path:
    package = root / name
    package.mkdir()
    (package / "main.py").write_text(main)
    properties = [
        {"title": field, "name": field, "type": kind, "editor": EDITORS[kind]}
        for field, kind in (fields or {}).items()
    ]
    (package / "input_schema.json").write_text(json.dumps({"properties": properties}))
    (package / "output_schema.json").write_text("[]")
    return package


def _serve(data_dir: Path) -> Served:
    """A real ``runyard serve`` whose environment holds the canaries."""
    return Served(data_dir, env={"RUNYARD_SECRET_KEY": CANARY_KEY, "RUNYARD_TEST_CANARY": CANARY})


@dataclass
class World:
    server: Served
    client: httpx.Client
    data_dir: Path
    #: A finished run (imported rows).
    finished: str


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A served data directory with the workers above and a finished run."""
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir)
    settings.resolved_secret_key()  # the file, though the server takes its key from the env
    svc = Services(settings)
    user_id = svc.accounts.create_user("alice")
    key = svc.accounts.create_key("alice")
    svc.workers.register(user_id, load_package(_package(tmp_path, "prober", PROBER, PROBER_FIELDS)))
    for name, main in (("marker", MARKER), ("spawner", SPAWNER)):
        svc.workers.register(user_id, load_package(_package(tmp_path, name, main)))
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(f'{{"n": {n}}}\n' for n in range(100)))
    finished = svc.imports.run(rows, user_id=user_id, worker_slug="rows")
    svc.close()
    server = _serve(data_dir)
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            yield World(server, client, data_dir, finished)
    finally:
        server.stop()


def _first_row(client: httpx.Client, run: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        rows = client.get(f"/api/v2/worker-runs/{run}/result").json()["data"]["list"]
        if rows:
            row: dict[str, Any] = rows[0]
            return row
        assert time.monotonic() < deadline, f"run {run} pushed no row"
        time.sleep(0.1)


def _export_file(world: World) -> Path:
    reply = world.client.get(
        f"/api/v2/worker-runs/{world.finished}/result/export", params={"format": "csv"}
    )
    assert reply.status_code == 200, reply.text
    deadline = time.monotonic() + 60
    while not (done := [p for p in (world.data_dir / "files").glob("*") if p.name[0] != "."]):
        assert time.monotonic() < deadline, "the export file was never written"
        time.sleep(0.1)
    return done[0]


def _gone(pids: list[int], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while any(process_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_worker_cannot_read_the_servers_files_other_runs_or_environments(
    world: World,
) -> None:
    server, client, data_dir = world.server, world.client, world.data_dir
    marker_run = start(client, "marker")
    marker = Path(_first_row(client, marker_run)["marker"])
    export = _export_file(world)
    paths = {
        "database": data_dir / "runyard.db",
        "secret_key": data_dir / "secret.key",
        "export": export,
        "marker": marker,
    }
    for path in paths.values():
        assert path.read_bytes(), f"{path} should exist and hold something"
    server_environ = Path(f"/proc/{server.proc.pid}/environ").read_bytes()
    assert f"RUNYARD_TEST_CANARY={CANARY}".encode() in server_environ

    custom = {name: str(path.resolve()) for name, path in paths.items()}
    custom |= {
        "data_dir": str(data_dir.resolve()),
        "server_pid": server.proc.pid,
        "url": f"{server.url}/openapi.json",
    }
    reply = client.post(
        "/api/v2/workers/prober/runs",
        json={"input": {"parameters": {"custom": custom}}, "is_async": False},
    )
    assert reply.json()["data"]["run_status"] == "succeeded", reply.text
    results = {row["what"]: row for row in reply.json()["data"]["results"]["list"]}
    client.post(f"/api/v2/worker-runs/{marker_run}/abort")

    # Each of these must fail inside the sandbox.
    assert not results["database"]["ok"], results["database"]["detail"]
    assert not results["secret.key"]["ok"], results["secret.key"]["detail"]
    assert not results["export"]["ok"], results["export"]["detail"]
    assert not results["other run"]["ok"], results["other run"]["detail"]
    assert not results["data dir"]["ok"], results["data dir"]["detail"]
    assert not results["canary"]["ok"], results["canary"]["detail"]
    assert not results["server environ"]["ok"], results["server environ"]["detail"]
    assert not results["tls private keys"]["ok"], results["tls private keys"]["detail"]
    # …while the worker can do its job.
    assert results["own input"]["ok"], results["own input"]["detail"]
    assert results["write cwd"]["ok"], results["write cwd"]["detail"]
    assert results["write TMPDIR"]["ok"], results["write TMPDIR"]["detail"]
    assert results["write /tmp"]["ok"], results["write /tmp"]["detail"]
    assert results["loopback"] == {"what": "loopback", "ok": True, "detail": "200"}
    # /tmp is the run's scratch tmp, on disk; /dev/shm is small: neither eats the host's RAM.
    assert results["tmp is scratch"]["detail"] == "True", results["tmp is scratch"]["detail"]
    assert 0 < int(results["shm bytes"]["detail"]) <= 64 * 1024 * 1024, results["shm bytes"]
    # HTTPS still verifies: the certificate store is there.
    assert int(results["tls roots"]["detail"]) > 0, results["tls roots"]["detail"]
    if os.geteuid() == 0:
        # Served as root, the worker is nobody.
        assert results["uid"]["detail"] == str(sandbox.SANDBOX_UID)


def test_kill_9_of_the_server_takes_the_whole_tree_down(world: World) -> None:
    server, client = world.server, world.client
    run = start(client, "spawner")
    _first_row(client, run)
    # bwrap, the worker and its child, which left the run's process group.
    processes = run_processes(run)
    assert len(processes) >= 3
    server.kill()
    try:
        assert _gone(processes), "the run's processes outlived the server"
    finally:
        kill_runs([run])


@pytest.fixture
def sandboxed(make_server: Any) -> Server:
    server: Server = make_server()
    return server


def _record(server: Server, run: str) -> Run:
    with server.services.db.session() as s:
        found = s.scalar(select(Run).where(Run.slug == run))
    assert found is not None
    return found


def test_abort_kills_the_tree_and_the_cpu_time_is_charged(sandboxed: Server) -> None:
    user: User = sandboxed.user()
    worker = sandboxed.worker(
        user,
        """
        import subprocess, time
        from runyard import sdk

        started = time.process_time()
        while time.process_time() - started < 1:
            pass
        subprocess.Popen(["sleep", "300"], start_new_session=True)
        sdk.push({"burnt": time.process_time() - started})
        sdk.flush()
        time.sleep(300)
        """,
    )
    with sandboxed.client(user) as api:
        run = start(api, worker)
        _first_row(api, run)
        processes = run_processes(run)
        assert len(processes) >= 3
        api.post(f"/api/v2/worker-runs/{run}/abort")
        record = wait_for(api, run, timeout=30)
    assert (record["status"], record["err_msg"]) == ("failed", "aborted by user")
    assert _gone(processes), "the child that left the group outlived the abort"
    # bwrap reaped the killed worker, so its CPU time reached the server through wait4.
    assert _record(sandboxed, run).cpu_seconds >= 1


def test_orphans_are_found_and_killed_by_their_run_id(sandboxed: Server) -> None:
    user = sandboxed.user()
    worker = sandboxed.worker(user, SPAWNER)
    with sandboxed.client(user) as api:
        run = start(api, worker)
        _first_row(api, run)
        processes = run_processes(run)
        # bwrap (the run's stored pid) and what runs inside it, as this host numbers them.
        assert _record(sandboxed, run).pid in processes
        assert len(processes) >= 3
        kill_runs([run])
        assert _gone(processes, timeout=5)
        record = wait_for(api, run, timeout=30)
    assert (record["status"], record["err_msg"]) == ("failed", "worker was killed by SIGKILL")


def test_a_worker_that_succeeds_is_charged_its_cpu_time(sandboxed: Server) -> None:
    user = sandboxed.user()
    worker = sandboxed.worker(
        user,
        """
        import subprocess, sys, time

        # Half in a child it waits for: counted too, as before the sandbox.
        code = "import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.5: pass"
        subprocess.run([sys.executable, "-c", code], check=True)
        started = time.process_time()
        while time.process_time() - started < 0.5:
            pass
        """,
    )
    with sandboxed.client(user) as api:
        record = wait_for(api, start(api, worker), timeout=60)
        assert record["status"] == "succeeded", record["err_msg"]
        assert _record(sandboxed, record["slug"]).cpu_seconds >= 1


def test_sandbox_none_runs_workers_without_bwrap(
    make_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    server: Server = make_server(sandbox="none")
    user = server.user()
    worker = server.worker(
        user,
        """
        import os
        from runyard import sdk

        sdk.push({"parent": os.getppid(), "uid": os.getuid()})
        """,
    )
    with server.client(user) as api:
        run = start(api, worker)
        record = wait_for(api, run)
        assert record["status"] == "succeeded", record["err_msg"]
        row = _first_row(api, run)
    # Unsandboxed: the server's own child, as its own user.
    assert row == {"parent": os.getpid(), "uid": os.getuid()}


def _no_bwrap_path(tmp_path: Path) -> str:
    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    return str(empty)


def test_serve_refuses_to_start_without_bwrap(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runyard", "serve", "--data-dir", str(tmp_path / "data")],
        env={**os.environ, "PATH": _no_bwrap_path(tmp_path), "RUNYARD_PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "bwrap is not installed" in lines[0]
    assert "apt-get install bubblewrap" in lines[0]
    assert "RUNYARD_SANDBOX=none" in lines[0]


@pytest.mark.skipif(POSTGRES_PROBLEM is not None, reason=str(POSTGRES_PROBLEM))
def test_an_execution_node_refuses_to_start_without_bwrap(
    tmp_path: Path, databases: Databases
) -> None:
    url = databases.url("postgresql")
    assert url is not None
    env = {**os.environ, "PATH": _no_bwrap_path(tmp_path), "RUNYARD_DATABASE_URL": url}
    done = subprocess.run(
        [sys.executable, "-m", "runyard", "worker", "--data-dir", str(tmp_path / "data")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "bwrap is not installed" in done.stderr
    assert "RUNYARD_SANDBOX=none" in done.stderr


def test_a_bwrap_that_cannot_work_here_is_refused_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(sandbox.SandboxUnavailable) as refused:
        sandbox.check(Settings(data_dir=tmp_path / "data"))
    message = str(refused.value)
    assert "No permissions to create new namespace" in message
    assert "RUNYARD_SANDBOX=none" in message
    # Not checked at all when the operator opted out.
    sandbox.check(Settings(data_dir=tmp_path / "data", sandbox="none"))


def test_the_data_directory_stays_hidden_inside_a_mounted_interpreter(tmp_path: Path) -> None:
    # An interpreter installed around the data directory: its prefix is mounted, the data
    # directory inside it is not.
    prefix = tmp_path / "opt"
    (prefix / "bin").mkdir(parents=True)
    python = prefix / "bin" / "python3"
    python.symlink_to(os.path.realpath(sys.executable))
    settings = Settings(data_dir=prefix / "data")
    database = prefix / "data" / "runyard.db"
    database.parent.mkdir()
    database.write_text("the server's rows")
    (prefix / "data" / "secret.key").write_text("k" * 64)
    code = (
        "import os\n"
        f"print(sorted(os.listdir({str(prefix)!r})), os.listdir({str(prefix / 'data')!r}))\n"
        "open('written', 'w').write('x')\n"
        f"open({str(database)!r})\n"
    )
    done = _run_sandboxed(settings, python, code)
    assert "FileNotFoundError" in done.stderr, done.stderr
    assert done.stdout.strip() == "['bin', 'data'] ['runs']"
    assert (settings.runs_dir / "01SCRATCH" / "work" / "written").read_text() == "x"


def test_an_interpreter_named_through_a_top_level_link_never_mounts_the_whole_host() -> None:
    # Debian's /bin is a link to /usr/bin: the prefix is found through it, never taken as /.
    assert "/" not in sandbox.interpreter_dirs("/bin/python3")
    assert "/" not in sandbox.interpreter_dirs("/python3")


def _run_sandboxed(settings: Settings, python: Path, code: str) -> subprocess.CompletedProcess[str]:
    scratch = settings.runs_dir / "01SCRATCH"
    (scratch / "work").mkdir(parents=True)
    (scratch / "tmp").mkdir()
    sandbox.hand_over(scratch)
    read_fd, write_fd = os.pipe()
    command = sandbox.command(
        settings,
        [str(python), "-c", code],
        scratch=scratch.resolve(),
        workdir=(scratch / "work").resolve(),
        info_fd=write_fd,
    )
    try:
        return subprocess.run(command, pass_fds=(write_fd,), capture_output=True, text=True)
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_an_sqlite_database_configured_elsewhere_stays_hidden(tmp_path: Path) -> None:
    # Configured inside an interpreter's prefix, which is mounted: its directory is not.
    prefix = tmp_path / "opt"
    (prefix / "bin").mkdir(parents=True)
    python = prefix / "bin" / "python3"
    python.symlink_to(os.path.realpath(sys.executable))
    (prefix / "db").mkdir()
    (prefix / "db" / "runyard.db").write_text("the server's rows")
    settings = Settings(
        data_dir=tmp_path / "data", database_url=f"sqlite:///{prefix / 'db' / 'runyard.db'}"
    )
    code = (
        f"import os\nprint(sorted(os.listdir({str(prefix)!r})), os.listdir({str(prefix / 'db')!r}))"
    )
    done = _run_sandboxed(settings, python, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['bin', 'db'] []"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root's workers run as another user")
def test_the_start_up_check_runs_a_worker_as_nobody_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    sandbox.check(settings)  # the real runtime: readable
    # A runtime directory a restrictive umask left to root alone: every run would fail.
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    (runtime / "bootstrap.py").write_text("")
    monkeypatch.setattr(sandbox, "BOOTSTRAP", str(runtime / "bootstrap.py"))
    with pytest.raises(sandbox.SandboxUnavailable) as refused:
        sandbox.check(settings)
    assert "Permission denied" in str(refused.value)
    assert "\n" not in str(refused.value)
    # It cleaned up after itself.
    assert os.listdir(settings.runs_dir) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root's workers run as another user")
def test_a_restrictive_umask_still_lets_runs_start(tmp_path: Path) -> None:
    # Scratch directories made 0700 and handed to nobody: the sandbox must still enter them.
    old = os.umask(0o077)
    try:
        settings = Settings(data_dir=tmp_path / "data")
        settings.runs_dir.mkdir(parents=True)
        sandbox.check(settings)
    finally:
        os.umask(old)
