"""The worker's side of a run, in real processes: bootstrap, the channel and both SDKs.

Each test writes a small worker package, starts it the way the executor does
(``<python> bootstrap.py main.py`` with the channel pipe passed as ``RUNYARD_CHANNEL_FD``) and
reads what arrives on the pipe, what the worker printed and how it exited.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import selectors
import signal
import subprocess
import sys
import sysconfig
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import runyard.runtime

BOOTSTRAP = runyard.runtime.BOOTSTRAP
SRC = str(Path(runyard.runtime.__file__).resolve().parents[2])


@dataclass
class Finished:
    code: int
    lines: list[str]
    #: ``time.monotonic()`` at which each line reached the parent.
    arrivals: list[float]
    #: When the pipe closed, that is when the worker (and anything holding the pipe) ended.
    ended: float
    stdout: str
    stderr: str
    messages: list[tuple[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.messages = [(line[0], json.loads(line[2:])) for line in self.lines]

    def rows(self) -> list[Any]:
        return [payload for tag, payload in self.messages if tag == "R"]


def make_worker(root: Path, main: str, **files: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.py").write_text(textwrap.dedent(main), encoding="utf-8")
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def start(
    worker: Path, *, python: str = sys.executable, input_json: str | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``worker`` like the executor does; the read end of its channel."""
    scratch = worker.parent / (worker.name + "-scratch")
    scratch.mkdir(exist_ok=True)
    input_path = scratch / "input.json"
    if input_json is not None:
        input_path.write_text(input_json, encoding="utf-8")
    read_fd, write_fd = os.pipe()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "LANG": "C.UTF-8",
        "RUNYARD_CHANNEL_FD": str(write_fd),
        "RUNYARD_INPUT": str(input_path),
        "RUNYARD_RUN_ID": "run-test",
    }
    try:
        proc = subprocess.Popen(
            [python, BOOTSTRAP, "main.py"],
            cwd=worker,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=(scratch / "stdout").open("wb"),
            stderr=(scratch / "stderr").open("wb"),
            pass_fds=(write_fd,),
            start_new_session=True,
        )
    finally:
        os.close(write_fd)
    return proc, read_fd


def finish(
    worker: Path, proc: subprocess.Popen[bytes], read_fd: int, timeout: float = 60
) -> Finished:
    """Read the channel to its end and wait for the worker."""
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    arrivals: list[float] = []
    partial = b""
    with selectors.DefaultSelector() as sel:
        sel.register(read_fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(timeout=left):
                kill_group(proc)
                os.close(read_fd)
                pytest.fail(f"worker still running after {timeout} s")
            data = os.read(read_fd, 1 << 20)
            now = time.monotonic()
            if not data:
                break
            *complete, partial = (partial + data).split(b"\n")
            for line in complete:
                lines.append(line.decode("utf-8"))
                arrivals.append(now)
    ended = time.monotonic()
    os.close(read_fd)
    code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    assert partial == b"", f"unterminated message {partial[:80]!r}"
    scratch = worker.parent / (worker.name + "-scratch")
    return Finished(
        code=code,
        lines=lines,
        arrivals=arrivals,
        ended=ended,
        stdout=(scratch / "stdout").read_text("utf-8"),
        stderr=(scratch / "stderr").read_text("utf-8"),
    )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill what is left of the worker's process group (the test's cleanup)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_worker(
    worker: Path, *, python: str = sys.executable, input_json: str | None = None
) -> Finished:
    proc, read_fd = start(worker, python=python, input_json=input_json)
    return finish(worker, proc, read_fd)


GRPC_SDK = """\
raise RuntimeError("CoreClaw's bundled gRPC sdk.py was imported")
"""

COREC_MAIN = """\
import sys
from sdk import SDK, CoreSDK

params = CoreSDK.Parameter.get_input_json_dict()
raw = CoreSDK.Parameter.get_input_json_str()
CoreSDK.Result.set_table_header([{"label": "Title", "key": "title", "format": "text"}])
res = CoreSDK.Result.push_data({"title": "Café — ok", "n": params["n"], "raw": raw})
CoreSDK.Result.push_data('{"title":\\r\\n"from text"}')
CoreSDK.Result.push_data(dict_obj={"title": "keyword"})
CoreSDK.Result.upsert_data({"url": "u1", "title": "y"}, "url")
CoreSDK.Result.upsert_data('{"url": "u2"}', unique_key="url")
CoreSDK.Log.debug("d")
CoreSDK.Log.info("i")
CoreSDK.Log.warn("w")
CoreSDK.Log.warning("w2")
SDK.Log.error(log="e\\nsecond line")
print(res.code, res.message, SDK is CoreSDK, "sdk_pb2" in sys.modules)
"""


def test_coreclaw_worker_runs_unmodified_beside_its_own_grpc_sdk(tmp_path: Path) -> None:
    worker = make_worker(tmp_path / "w", COREC_MAIN, **{"sdk.py": GRPC_SDK, "sdk_pb2.py": GRPC_SDK})
    done = run_worker(worker, input_json='{"n": 7}')
    assert done.stderr == ""
    assert done.code == 0
    assert done.lines == [
        'H [{"label":"Title","key":"title","format":"text"}]',
        'R {"title":"Café — ok","n":7,"raw":"{\\"n\\": 7}"}',
        'R {"title":  "from text"}',
        'R {"title":"keyword"}',
        'U {"key":"url","row":{"url":"u1","title":"y"}}',
        'U {"key":"url","row":{"url": "u2"}}',
        'L {"level":1,"msg":"d"}',
        'L {"level":2,"msg":"i"}',
        'L {"level":3,"msg":"w"}',
        'L {"level":3,"msg":"w2"}',
        'L {"level":4,"msg":"e\\nsecond line"}',
    ]
    assert done.stdout == "0 success True False\n"


RUNYARD_MAIN = """\
import runyard.sdk
from runyard import sdk

params = sdk.input()
sdk.set_headers([{"key": "title", "label": "Title", "format": "text"}, "url"])
sdk.push({"title": "one", "q": params["q"], "nested": {"a": [1, 2.5, None, True]}})
sdk.push_many({"i": i} for i in range(3))
sdk.push_many([])
sdk.upsert({"url": "u", "title": "y"}, key="url")
sdk.log("dbg", level="debug")
sdk.log("hello")
sdk.log("careful", level="WARNING")
sdk.log({"not": "a str"}, level="error")
print(runyard.sdk is sdk)
"""


def test_runyard_sdk_messages(tmp_path: Path) -> None:
    worker = make_worker(tmp_path / "w", RUNYARD_MAIN)
    done = run_worker(worker, input_json='{"q": "shoes"}')
    assert (done.code, done.stderr, done.stdout) == (0, "", "True\n")
    assert done.lines == [
        'H [{"key":"title","label":"Title","format":"text"},{"key":"url","label":"url"}]',
        'R {"title":"one","q":"shoes","nested":{"a":[1,2.5,null,true]}}',
        'R {"i":0}',
        'R {"i":1}',
        'R {"i":2}',
        'U {"key":"url","row":{"url":"u","title":"y"}}',
        'L {"level":1,"msg":"dbg"}',
        'L {"level":2,"msg":"hello"}',
        'L {"level":3,"msg":"careful"}',
        'L {"level":4,"msg":"{\'not\': \'a str\'}"}',
    ]


def test_both_sdks_share_one_channel_in_push_order(tmp_path: Path) -> None:
    worker = make_worker(
        tmp_path / "w",
        """\
        from sdk import CoreSDK
        from runyard import sdk

        for i in range(2000):
            if i % 2:
                sdk.push({"i": i})
            else:
                CoreSDK.Result.push_data({"i": i})
        sdk.push_many({"i": i} for i in range(2000, 50000))
        """,
    )
    done = run_worker(worker)
    assert done.code == 0
    assert [row["i"] for row in done.rows()] == list(range(50000))


def test_missing_input_reads_as_an_empty_object(tmp_path: Path) -> None:
    worker = make_worker(
        tmp_path / "w",
        """\
        from sdk import CoreSDK
        from runyard import sdk

        params = CoreSDK.Parameter
        sdk.push({
            "dict": params.get_input_json_dict(),
            "str": params.get_input_json_str(),
            "sdk": sdk.input(),
        })
        """,
    )
    done = run_worker(worker, input_json=None)
    assert done.rows() == [{"dict": {}, "str": "{}", "sdk": {}}]


def test_caller_errors_are_raised_in_the_worker(tmp_path: Path) -> None:
    worker = make_worker(
        tmp_path / "w",
        """\
        from sdk import CoreSDK
        from runyard import sdk

        loop = {}
        loop["self"] = loop
        calls = [
            lambda: sdk.push([1, 2]),
            lambda: sdk.push('{"a": 1}'),
            lambda: sdk.push({"x": float("nan")}),
            lambda: sdk.push(loop),
            lambda: sdk.push({"when": object()}),
            lambda: sdk.push_many({"a": 1}),
            lambda: sdk.push_many([{"before": "bad"}, 5, {"after": "bad"}]),
            lambda: sdk.upsert({"a": 1}, key="b"),
            lambda: sdk.upsert({"a": 1}, key=""),
            lambda: sdk.set_headers("title"),
            lambda: sdk.set_headers([{"label": "no key"}]),
            lambda: sdk.log("x", level="loud"),
            lambda: CoreSDK.Result.push_data(42),
            lambda: CoreSDK.Result.upsert_data({"a": 1}, "b"),
            lambda: CoreSDK.Result.upsert_data({"a": 1}, ""),
            lambda: CoreSDK.Result.set_table_header("title"),
        ]
        for call in calls:
            try:
                call()
            except Exception as exc:
                print(type(exc).__name__)
            else:
                print("accepted")
        """,
    )
    done = run_worker(worker)
    assert done.code == 0, done.stderr
    assert done.stdout.split() == [
        "TypeError",
        "TypeError",
        "ValueError",
        "ValueError",
        "TypeError",
        "TypeError",
        "TypeError",
        "ValueError",
        "TypeError",
        "TypeError",
        "TypeError",
        "ValueError",
        "TypeError",
        "ValueError",
        "ValueError",
        "TypeError",
    ]
    # Rows before a bad one in push_many are pushed, as push() would have; nothing else is.
    assert done.lines == ['R {"before":"bad"}']


def test_failing_worker_exits_1_with_its_traceback_and_keeps_its_rows(tmp_path: Path) -> None:
    worker = make_worker(
        tmp_path / "w",
        """\
        from runyard import sdk

        def scrape():
            raise ValueError("site changed")

        sdk.push({"got": "this far"})
        scrape()
        """,
    )
    done = run_worker(worker)
    assert done.code == 1
    assert done.lines == ['R {"got":"this far"}']
    assert done.stderr.startswith("Traceback (most recent call last):\n")
    assert done.stderr.endswith("ValueError: site changed\n")
    assert 'main.py", line 7, in <module>' in done.stderr
    assert 'in scrape\n    raise ValueError("site changed")' in done.stderr
    # Only the worker's own frames: Runyard's plumbing is not the author's to debug.
    assert "bootstrap.py" not in done.stderr and "runpy" not in done.stderr


def test_syntax_error_in_main_is_reported_without_runyards_frames(tmp_path: Path) -> None:
    worker = make_worker(tmp_path / "w", "from runyard import sdk\nsdk.push({'a': 1)\n")
    done = run_worker(worker)
    assert done.code == 1
    assert done.lines == []
    assert 'main.py", line 2' in done.stderr
    assert "SyntaxError" in done.stderr
    assert "bootstrap.py" not in done.stderr and "runpy" not in done.stderr


def test_rows_pushed_by_the_workers_exit_hooks_are_sent(tmp_path: Path) -> None:
    worker = make_worker(
        tmp_path / "w",
        """\
        import atexit
        from sdk import CoreSDK

        atexit.register(lambda: CoreSDK.Result.push_data({"from": "atexit"}))
        CoreSDK.Result.push_data({"from": "main"})
        """,
    )
    done = run_worker(worker)
    assert done.code == 0
    assert done.rows() == [{"from": "main"}, {"from": "atexit"}]


@pytest.mark.parametrize(
    ("ending", "code", "stderr"),
    [("sys.exit(3)", 3, ""), ("sys.exit()", 0, ""), ("sys.exit('gave up')", 1, "gave up\n")],
)
def test_sys_exit_status_is_kept(tmp_path: Path, ending: str, code: int, stderr: str) -> None:
    worker = make_worker(
        tmp_path / "w",
        f"""\
        import sys
        from runyard import sdk

        sdk.push({{"before": "exit"}})
        {ending}
        sdk.push({{"never": "sent"}})
        """,
    )
    done = run_worker(worker)
    assert (done.code, done.stderr) == (code, stderr)
    assert done.lines == ['R {"before":"exit"}']


def test_rows_arrive_while_the_worker_is_still_running(tmp_path: Path) -> None:
    worker = make_worker(
        tmp_path / "w",
        """\
        import time
        from sdk import CoreSDK

        CoreSDK.Result.push_data({"early": True})
        time.sleep(2)
        CoreSDK.Result.push_data({"late": True})
        """,
    )
    done = run_worker(worker)
    assert done.code == 0
    assert done.rows() == [{"early": True}, {"late": True}]
    early, late = done.arrivals
    # The buffer is flushed within 0.2 s, not at exit two seconds later.
    assert done.ended - early > 1.5
    assert done.ended - late < 1.0


def test_rows_pushed_by_threads_after_main_returns_are_sent(tmp_path: Path) -> None:
    worker = make_worker(
        tmp_path / "w",
        """\
        import threading, time
        from runyard import sdk

        def late():
            time.sleep(0.5)
            for i in range(1000):
                sdk.push({"i": i})

        threading.Thread(target=late).start()
        """,
    )
    done = run_worker(worker)
    assert done.code == 0
    assert [row["i"] for row in done.rows()] == list(range(1000))


def test_a_forked_child_does_not_resend_the_parents_pending_rows(tmp_path: Path) -> None:
    worker = make_worker(
        tmp_path / "w",
        """\
        import os
        from runyard import sdk

        sdk.push({"from": "parent, before the fork"})
        pid = os.fork()
        if pid == 0:
            sdk.push({"from": "child"})
            sdk.flush()
            os._exit(0)
        os.waitpid(pid, 0)
        sdk.push({"from": "parent, after"})
        """,
    )
    done = run_worker(worker)
    assert done.code == 0
    assert sorted(row["from"] for row in done.rows()) == [
        "child",
        "parent, after",
        "parent, before the fork",
    ]


def test_programs_the_worker_leaves_behind_do_not_hold_the_run_open(tmp_path: Path) -> None:
    worker = make_worker(
        tmp_path / "w",
        """\
        import subprocess
        from runyard import sdk

        sdk.push({"started": "sleeper"})
        subprocess.Popen(["sleep", "30"], close_fds=False)
        """,
    )
    proc, read_fd = start(worker)
    began = time.monotonic()
    try:
        done = finish(worker, proc, read_fd)
    finally:
        kill_group(proc)
    assert done.code == 0
    assert done.rows() == [{"started": "sleeper"}]
    assert done.ended - began < 10


def test_worker_exits_quietly_when_the_parent_is_gone(tmp_path: Path) -> None:
    worker = make_worker(
        tmp_path / "w",
        """\
        from runyard import sdk

        while True:
            sdk.push({"row": "x" * 1000})
            sdk.flush()
        """,
    )
    proc, read_fd = start(worker)
    os.close(read_fd)
    try:
        code = proc.wait(timeout=60)
    finally:
        kill_group(proc)
    scratch = worker.parent / (worker.name + "-scratch")
    assert (scratch / "stderr").read_text() == ""
    assert code == 141


def test_the_workers_own_modules_come_first_on_sys_path(tmp_path: Path) -> None:
    # The server's interpreter has httpx installed; a worker shipping its own must get its own.
    worker = make_worker(
        tmp_path / "w",
        """\
        import sys, importlib.util
        import httpx
        from runyard import sdk

        sdk.push({
            "httpx": httpx.__version__,
            "first": sys.path[0],
            "bootstrap_dir_visible": importlib.util.find_spec("coreclaw") is not None,
        })
        """,
        **{"httpx.py": '__version__ = "the worker\'s own"\n'},
    )
    done = run_worker(worker)
    assert done.code == 0, done.stderr
    assert done.rows() == [
        {"httpx": "the worker's own", "first": str(worker), "bootstrap_dir_visible": False}
    ]


BARE_MAIN = """\
import sys
from sdk import CoreSDK
from runyard import sdk
import runyard.sdk

try:
    import fastapi
    fastapi_importable = True
except ImportError:
    fastapi_importable = False
try:
    import runyard.settings
    server_code = True
except ImportError:
    server_code = False

CoreSDK.Result.push_data({"fastapi": fastapi_importable, "server_code": server_code})
sdk.push_many([{"path": sys.path}])
sdk.log("in a bare venv", level="warn")
"""


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A virtualenv with nothing installed, not even pip."""
    root = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    return str(root / "bin" / "python")


def test_runs_in_a_bare_virtualenv_without_the_servers_packages(
    tmp_path: Path, bare_venv: str
) -> None:
    worker = make_worker(tmp_path / "w", BARE_MAIN, **{"sdk.py": GRPC_SDK})
    done = run_worker(worker, python=bare_venv)
    assert done.stderr == ""
    assert done.code == 0
    assert done.rows()[0] == {"fastapi": False, "server_code": False}
    path = done.rows()[1]["path"]
    assert path[0] == str(worker)
    server_site = sysconfig.get_paths()["purelib"]
    assert not [p for p in path if p.startswith((server_site, SRC))]
    assert done.lines[-1] == 'L {"level":3,"msg":"in a bare venv"}'


def _older_pythons() -> list[str]:
    found = []
    for pattern in (
        "/usr/bin/python3.9",
        "/usr/local/bin/python3.9",
        "~/.pyenv/versions/3.9*/bin/python",
    ):
        found.extend(sorted(glob.glob(os.path.expanduser(pattern)))[:1])
    return found[:1]


@pytest.mark.parametrize(
    "python", _older_pythons() or [pytest.param("", marks=pytest.mark.skip("no Python 3.9 here"))]
)
def test_runs_under_python_3_9(tmp_path: Path, python: str) -> None:
    coreclaw = make_worker(tmp_path / "c", COREC_MAIN, **{"sdk.py": GRPC_SDK})
    done = run_worker(coreclaw, python=python, input_json='{"n": 1}')
    assert (done.code, done.stderr) == (0, "")
    assert len(done.lines) == 11
    own = make_worker(tmp_path / "r", RUNYARD_MAIN)
    done = run_worker(own, python=python, input_json='{"q": "x"}')
    assert (done.code, done.stderr) == (0, "")
    assert len(done.lines) == 10
