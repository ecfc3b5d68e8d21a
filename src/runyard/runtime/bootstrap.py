"""Start a worker: ``<python> <this file> main.py``, with the package copy as the cwd.

Runs under the worker's interpreter, which may be a bare virtualenv without Runyard, so it loads
its sibling modules by path instead of importing a ``runyard`` package, and never adds the
server's directories to ``sys.path`` (a worker's own pinned packages must win). Then:

- ``sdk`` is CoreClaw's shim, registered before the worker runs, so ``from sdk import CoreSDK``
  gets it even when the worker ships CoreClaw's own ``sdk.py`` (a gRPC client, never imported);
- ``runyard.sdk`` is Runyard's SDK, under a stand-in ``runyard`` package when none is installed;
- the worker's directory comes first on ``sys.path``, as if it had been started as
  ``python main.py``, and ``main.py`` runs as ``__main__``;
- whatever way it ends, the channel is flushed first and the exit status is the worker's:
  ``sys.exit(n)`` keeps ``n``, an uncaught exception prints its traceback to stderr and exits 1.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import runpy
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name: str, filename: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, filename))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {filename} from {HERE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _same_dir(entry: str, directory: str) -> bool:
    try:
        return os.path.realpath(entry or os.curdir) == os.path.realpath(directory)
    except (OSError, ValueError):
        return False


def _runyard_package() -> types.ModuleType:
    """The ``runyard`` package the worker would import, or a stand-in when there is none."""
    try:
        found = importlib.util.find_spec("runyard") is not None
    except (ImportError, ValueError):
        found = False
    if found:
        try:
            import runyard

            return runyard
        except Exception:  # noqa: S110 - a broken install must not stop the run
            pass
    package = types.ModuleType("runyard", "Stand-in for Runyard's package inside a worker.")
    # A package with no directory: ``import runyard.x`` then fails as "No module named".
    package.__path__ = []
    package.__spec__ = importlib.machinery.ModuleSpec("runyard", None, is_package=True)
    sys.modules["runyard"] = package
    return package


def _worker_traceback(exc: BaseException) -> types.TracebackType | None:
    # Drop this file's and runpy's frames: the worker's author did not write them.
    # Compared by globals, not file name: runpy is a frozen module ("<frozen runpy>") on 3.11+.
    own = (globals(), vars(runpy))
    tb = exc.__traceback__
    while tb is not None and any(tb.tb_frame.f_globals is g for g in own):
        tb = tb.tb_next
    # None when the error is in no frame of the worker's (a SyntaxError in main.py, say):
    # then the exception alone, which names the file and line, is the clearest report.
    return tb


def _limit_memory(megabytes: str | None) -> None:
    """Apply the run's memory limit before any of the worker's code runs (hard limit too, so
    the worker cannot raise it back)."""
    if megabytes and megabytes.isdigit():
        import resource

        limit = int(megabytes) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _die_with_parent(parent: str | None) -> None:
    """Be killed when the thread that started this process ends (Linux), unsandboxed.

    A run's process leads a session of its own so that abort can kill its whole tree; that
    also takes it out of the executor's process group, so a ``kill -9`` of the executor (an
    execution node dying) would leave it running, unowned, still pushing into a closed pipe.

    Only this process gets the signal; children the worker started live on, handed to init.
    The executor kills them on its next start, found by their ``RUNYARD_RUN_ID``
    (``execution.process.kill_runs``), and a service manager does at once (systemd kills the
    unit's whole cgroup). They are not killed from here: ``SIGKILL`` runs no handler, and a
    catchable signal with a handler that kills the group would run inside the worker's own
    process, where the worker may replace or ignore it (Scrapy installs its own ``SIGTERM``
    handler) or delay it in a long C call: then not even this process would be sure to die.
    """
    if not parent or not parent.isdigit() or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    # The parent may have died before the request took effect: then this process was
    # already handed to another parent, and no signal will ever come.
    if os.getppid() != int(parent):
        os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    if len(sys.argv) < 2:
        sys.stderr.write("usage: bootstrap.py main.py [args...]\n")
        sys.exit(2)
    # Sandboxed, bwrap does it (execution/sandbox.py): there is no RUNYARD_PARENT_PID, and
    # this process's parent is not even in its pid namespace.
    if os.environ.get("RUNYARD_SANDBOX") != "bwrap":
        _die_with_parent(os.environ.get("RUNYARD_PARENT_PID"))
    _limit_memory(os.environ.get("RUNYARD_MEMORY_MB"))
    worker_dir = os.getcwd()
    sys.path[:] = [entry for entry in sys.path if not _same_dir(entry, HERE)]
    sys.path.insert(0, worker_dir)

    channel = _load("runyard.runtime.channel", "channel.py")
    # Opened now so its exit hook is registered before any of the worker's: hooks run last
    # registered first, so rows pushed by the worker's own exit hooks are still sent.
    channel.get_channel()
    sys.modules["sdk"] = _load("runyard.runtime.coreclaw", "coreclaw.py")
    runyard_sdk = _load("runyard.runtime.sdk", "sdk.py")
    sys.modules["runyard.sdk"] = runyard_sdk
    _runyard_package().sdk = runyard_sdk  # type: ignore[attr-defined]

    sys.argv = sys.argv[1:]
    path = os.path.abspath(sys.argv[0])
    try:
        runpy.run_path(path, run_name="__main__")
    except Exception as exc:
        # The default hook prints the exception's own traceback, not the one it is given.
        exc.__traceback__ = _worker_traceback(exc)
        sys.excepthook(type(exc), exc, exc.__traceback__)
        channel.drain()
        sys.exit(1)
    finally:
        # Rows pushed by threads still running are sent by the channel's atexit hook.
        channel.drain()


if __name__ == "__main__":
    main()
