"""The worker sandbox: the bubblewrap (``bwrap``) command line a run's process starts under.

A sandboxed worker sees a file system made of read-only system directories (``/usr`` and
Debian's ``/bin``, ``/lib``… links), the few files of ``/etc`` that name resolution, TLS and
user names need, its interpreter (the prefix, and the virtualenv of ``version.python``),
Runyard's ``runtime`` directory, a fresh ``/proc`` of its own pid namespace, and its run's
scratch directory, read-write; its ``/tmp`` is the scratch directory's ``tmp`` (``TMPDIR``, on
disk: a tmpfs would hold its files in the host's memory, which no rlimit counts), and
``/dev/shm`` a small tmpfs of its own (``sandbox_shm_mb``). Nothing else of the host: not the
database, ``secret.key``, ``files/``, ``workers/``, other runs' scratch directories, TLS
private keys or the server's ``/proc/<pid>/environ``. The network is the host's (workers
scrape the web).

When the server runs as root, the worker also stops being root: bwrap sets the mounts up, then
``setpriv`` makes the process ``nobody`` (uid and gid 65534, no groups, no capabilities), so a
mistake in what is mounted, or an escape, still meets the kernel's permission checks. A server
that is not root gets the same mounts inside a user namespace, as its own uid.

The first process of the namespace (pid 1) is a shell that starts the worker and waits for it
(``--as-pid-1`` replaces bwrap's own init by it). It keeps the credentials bwrap started it
with, so bwrap's ``--die-with-parent`` holds for it (becoming ``nobody`` cancels that request
for the worker, and a dying root bwrap may not signal ``nobody`` anyway): the server's thread
ends, bwrap is killed, the shell is killed, and with the first process of a pid namespace the
kernel kills every other process in it, whatever session it made for itself. The shell reaps
the worker and bwrap reaps the shell, so ``wait4`` on bwrap reports the worker's CPU time; to
keep that true of a killed worker, ``kill`` kills the shell's children, never the shell
first (killed first, it would leave them to the kernel, which reaps them uncounted).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from runyard.runtime import BOOTSTRAP
from runyard.settings import Settings

#: ``nobody``/``nogroup``: who a worker runs as when the server is root.
SANDBOX_UID = 65534
SANDBOX_GID = 65534
#: System directories, read-only; on Debian (merged ``/usr``) all but ``/usr`` are links.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: The files of ``/etc`` a worker may need: users, name resolution, TLS roots, dynamic linking,
#: time zone. Not the rest: ``shadow``, service credentials and environment files live there,
#: and of ``ssl`` and ``pki`` only the certificate stores (``ssl/private`` holds host keys).
ETC_FILES = (
    "passwd",
    "group",
    "nsswitch.conf",
    "hosts",
    "host.conf",
    "resolv.conf",
    "gai.conf",
    "services",
    "protocols",
    "ssl/certs",
    "ssl/openssl.cnf",
    "ca-certificates",
    "ca-certificates.conf",
    "pki/tls/certs",
    "pki/tls/cert.pem",
    "pki/tls/openssl.cnf",
    "pki/ca-trust",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "mime.types",
    "alternatives",
    "fonts",
    "os-release",
)
#: How long bwrap may take to report its child: it does at once unless the host is stuck.
INFO_TIMEOUT_SECONDS = 30.0
#: bwrap exits with 128 + the signal number when the worker was killed by a signal.
_SIGNALLED = 128

_HINT = (
    "install bubblewrap (apt-get install bubblewrap), or set RUNYARD_SANDBOX=none to run "
    "workers unsandboxed, knowingly (docs/workers.md, Trust)"
)


class SandboxUnavailable(RuntimeError):
    """``RUNYARD_SANDBOX=bwrap`` and bubblewrap cannot run here: runs must not start."""


def drops_privileges() -> bool:
    """Whether workers become ``nobody``: the server is root (only root can make them so)."""
    return os.geteuid() == 0


def hand_over(scratch: Path) -> None:
    """Give the scratch directory to the uid the worker runs as (when that is not ours)."""
    if not drops_privileges():
        return
    os.chown(scratch, SANDBOX_UID, SANDBOX_GID)
    for root, dirs, files in os.walk(scratch):
        for name in dirs + files:
            os.chown(os.path.join(root, name), SANDBOX_UID, SANDBOX_GID, follow_symlinks=False)
    # Until setpriv, the sandbox runs as root without capabilities: to these directories, now
    # ``nobody``'s, it is "other", and it must still pass through them to ``--chdir`` (``tmp``
    # too: it is ``/tmp`` inside, on the way when the data directory is below ``/tmp``).
    for directory in (scratch, scratch / "tmp", scratch / "work"):
        if directory.is_dir():
            os.chmod(directory, directory.stat().st_mode & 0o7777 | 0o711)  # noqa: S103


def exit_code(code: int) -> int:
    """The worker's exit code as ``Popen`` would give it: bwrap reports a death by signal N
    as 128 + N, which becomes -N (a worker exiting with 137 itself reads as SIGKILL)."""
    if code > _SIGNALLED:
        with contextlib.suppress(ValueError):
            return -signal.Signals(code - _SIGNALLED)
    return code


def _inside(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def interpreter_dirs(python: str) -> list[str]:
    """What a Python needs mounted to start: its prefix (a virtualenv's, and the base
    installation's, by ``pyvenv.cfg`` and by following its links)."""
    path = Path(os.path.abspath(python))
    found = [str(path.parent.parent)]
    config = path.parent.parent / "pyvenv.cfg"
    with contextlib.suppress(OSError):
        for line in config.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                found.append(os.path.realpath(os.path.join(value.strip(), os.pardir)))
    found.append(str(Path(os.path.realpath(path)).parent.parent))
    # Never the whole host: ``/bin/python3`` (a link on Debian) is found by its target.
    return [directory for directory in found if directory != "/"]


class _Mounts:
    """bwrap mount arguments, creating every missing parent directory world-readable (bwrap
    makes them owner-only, which would lock ``nobody`` out of its own interpreter)."""

    def __init__(self) -> None:
        self.args: list[str] = []
        #: Mount points in the order mounted, each with whether it shows a host tree (a bind,
        #: where every directory below exists) or starts empty (a tmpfs, ``/proc``, ``/dev``).
        self.mounts: list[tuple[str, bool]] = []
        #: Directories made (and links), which exist whatever is mounted around them.
        self.dirs: set[str] = {"/"}

    def _covering(self, path: str) -> tuple[str, bool] | None:
        """The mount ``path`` lies in: the deepest one holding it."""
        holding = [(m, host) for m, host in self.mounts if _inside(path, [m])]
        return max(holding, key=lambda mount: len(mount[0]), default=None)

    def host_shows(self, path: str) -> bool:
        """Whether ``path`` is visible through a bind of a host tree."""
        covering = self._covering(path)
        return covering is not None and covering[1]

    def _exists(self, path: str) -> bool:
        covering = self._covering(path)
        return path in self.dirs or (covering is not None and (covering[1] or covering[0] == path))

    def _parents(self, dest: str) -> None:
        parts = Path(dest).parts[1:-1]
        for depth in range(1, len(parts) + 1):
            parent = "/" + "/".join(parts[:depth])
            if not self._exists(parent):
                self.args += ["--perms", "0755", "--dir", parent]
                self.dirs.add(parent)

    def _mounted(self, path: str, host: bool) -> None:
        # A mount hides what was mounted or made below it.
        self.mounts = [(m, h) for m, h in self.mounts if not _inside(m, [path])]
        self.dirs = {d for d in self.dirs if d == path or not _inside(d, [path])}
        self.mounts.append((path, host))

    def bind(
        self,
        path: str,
        *,
        writable: bool = False,
        optional: bool = False,
        source: str | None = None,
    ) -> None:
        """The host's ``path`` at ``path``; or another host directory, ``source``, there."""
        if source is None and not writable and self.host_shows(path):
            return  # shown already
        self._parents(path)
        option = "--bind" if writable else "--ro-bind"
        self.args += [option + ("-try" if optional else ""), source or path, path]
        # Another directory does not show the host's tree below ``path``.
        self._mounted(path, source is None)

    def empty(self, path: str, *, perms: str = "0755", size_mb: int | None = None) -> None:
        """A fresh tmpfs at ``path``, hiding whatever was there."""
        self._parents(path)
        self.args += ["--perms", perms]
        if size_mb:
            self.args += ["--size", str(size_mb * 1024 * 1024)]
        self.args += ["--tmpfs", path]
        self._mounted(path, False)

    def special(self, option: str, path: str) -> None:
        """``--proc`` or ``--dev``."""
        self._parents(path)
        self.args += [option, path]
        self._mounted(path, False)

    def link(self, target: str, path: str) -> None:
        self.args += ["--symlink", target, path]
        self.dirs.add(path)


def _private_dirs(settings: Settings) -> list[str]:
    """Where the server's own files are: hidden even when inside something mounted."""
    found: list[str] = []
    directories = [settings.data_dir, settings.resolved_shared_dir]
    database = _sqlite_file(settings)
    if database:
        # Its directory: SQLite keeps ``-wal`` and ``-journal`` files beside it.
        directories.append(Path(os.path.dirname(database)))
    for directory in directories:
        for path in (os.path.abspath(directory), os.path.realpath(directory)):
            if path not in found and path != "/":
                found.append(path)
    return found


def _sqlite_file(settings: Settings) -> str | None:
    """An explicitly configured SQLite database's file (it may live outside ``data_dir``)."""
    if settings.database_url is None:
        return None
    try:
        url = make_url(settings.database_url.get_secret_value())
    except ArgumentError:
        return None  # the database refuses it at start
    name = url.database or ""
    if url.get_backend_name() != "sqlite" or name in ("", ":memory:") or name.startswith("file:"):
        return None
    return os.path.abspath(name)


def _namespaces() -> list[str]:
    args = [
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--as-pid-1",
        "--cap-drop",
        "ALL",
    ]
    if drops_privileges():
        # No user namespace as root: it would map one uid only, and ``nobody`` must be the
        # real one. setpriv needs these two to become it, and loses them by doing so.
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        # Not root: mounts need a user namespace; the worker may not make more of them.
        args += ["--unshare-user", "--disable-userns"]
    return args


def _drop(setpriv: str) -> list[str]:
    if not drops_privileges():
        return []
    return [
        setpriv,
        f"--reuid={SANDBOX_UID}",
        f"--regid={SANDBOX_GID}",
        "--clear-groups",
        "--inh-caps=-all",
        "--",
    ]


def _init(setpriv: str) -> list[str]:
    """pid 1: a shell that runs the rest (as ``nobody`` when root) and waits for it; ``exit``
    keeps it from replacing itself with the worker."""
    return ["/bin/sh", "-c", '"$@"; exit $?', "sh", *_drop(setpriv)]


def _tools() -> tuple[str, str]:
    """bwrap's path, and setpriv's (util-linux) when the server is root."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(f"bwrap is not installed (RUNYARD_SANDBOX=bwrap): {_HINT}")
    setpriv = shutil.which("setpriv") or ""
    if drops_privileges() and not setpriv:
        raise SandboxUnavailable(
            "setpriv (util-linux) is not installed: as root, workers need it to run as nobody; "
            + _HINT
        )
    return bwrap, setpriv


def command(
    settings: Settings,
    argv: Sequence[str],
    *,
    scratch: Path,
    workdir: Path,
    info_fd: int,
    memory_mb: int | None = None,
) -> list[str]:
    """The command that runs ``argv`` (``python bootstrap.py main.py``) sandboxed, with
    ``scratch`` (absolute) its only writable directory; bwrap writes the pid of the sandbox's
    first process (as this host sees it) to ``info_fd`` as JSON, ``{"child-pid": N, …}``."""
    bwrap, setpriv = _tools()
    shm_mb = min(settings.sandbox_shm_mb, memory_mb or settings.sandbox_shm_mb)
    mounts = _system_mounts(shm_mb, scratch / "tmp")
    private = _private_dirs(settings)
    shown = [*interpreter_dirs(argv[0]), os.path.dirname(BOOTSTRAP)]
    outside = [path for path in shown if not _inside(path, private)]
    for path in outside:
        mounts.bind(path)
    for path in private:
        # Only when something mounted holds it (an interpreter installed around the data).
        if mounts.host_shows(path):
            mounts.empty(path)
    for path in shown:
        if path not in outside:
            mounts.bind(path)  # a virtualenv in the shared directory's ``venvs/``
    mounts.bind(str(scratch), writable=True)
    return [
        bwrap,
        *_namespaces(),
        *mounts.args,
        "--chdir",
        str(workdir),
        "--info-fd",
        str(info_fd),
        "--",
        *_init(setpriv),
        *argv,
    ]


def _system_mounts(shm_mb: int, tmp: Path) -> _Mounts:
    mounts = _Mounts()
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            mounts.link(os.readlink(path), path)
        elif os.path.isdir(path):
            mounts.bind(path)
    for name in ETC_FILES:
        mounts.bind(f"/etc/{name}", optional=True)
    mounts.special("--proc", "/proc")
    mounts.special("--dev", "/dev")
    # In memory, which the run's rlimit does not count: small, whatever the run's limit.
    mounts.empty("/dev/shm", perms="1777", size_mb=shm_mb)  # noqa: S108
    # On disk, in the scratch directory: mounted before it, in case it lies below /tmp.
    mounts.bind("/tmp", writable=True, source=str(tmp))  # noqa: S108
    return mounts


#: What the start-up probe does as a run would: start the interpreter, import the standard
#: library, read Runyard's runtime, write to its working directory and ``/tmp``.
_PROBE = """
import os, runpy, sys
runtime = sys.argv[1]
for name in os.listdir(runtime):
    if name.endswith(".py"):
        with open(os.path.join(runtime, name), "rb") as f:
            f.read(1)
for directory in (".", "/tmp"):
    with open(os.path.join(directory, "probe"), "w") as f:
        f.write("ok")
"""


def check(settings: Settings) -> None:
    """Refuse to execute runs if the configured sandbox cannot run a worker here: once, at
    start (``SandboxUnavailable``, one line saying how to fix it). It runs this server's
    interpreter through the mounts a run gets, as the user a run is: a umask that locked
    ``nobody`` out of the interpreter or ``runtime/`` would fail every run otherwise."""
    if settings.sandbox == "none":
        return
    _tools()
    runs_dir = settings.runs_dir
    runs_dir.mkdir(parents=True, exist_ok=True)
    # A dot: never a run's slug (an execution node's clean-up skips it). Made as a run's is,
    # with the umask's mode (mkdtemp's 0700 would lock bwrap out where a run's is not).
    scratch = Path(os.path.abspath(runs_dir)) / f".sandbox-check-{secrets.token_hex(8)}"
    scratch.mkdir()
    read_fd, write_fd = os.pipe()  # bwrap's report, unread: kept open so it may write it
    try:
        work = scratch / "work"
        work.mkdir()
        (scratch / "tmp").mkdir()
        hand_over(scratch)
        runtime = os.path.dirname(BOOTSTRAP)
        probe = command(
            settings,
            [sys.executable, "-c", _PROBE, runtime],
            scratch=scratch,
            workdir=work,
            info_fd=write_fd,
        )
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        env |= {"HOME": str(scratch), "TMPDIR": str(scratch / "tmp")}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        try:
            done = subprocess.run(
                probe,
                cwd=work,
                env=env,
                pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"bwrap could not be started ({exc}): {_HINT}") from None
    finally:
        os.close(read_fd)
        os.close(write_fd)
        shutil.rmtree(scratch, ignore_errors=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit {done.returncode}"]
        raise SandboxUnavailable(
            f"a sandboxed worker cannot start here ({lines[-1].strip()}): {_HINT}"
        )


def unsandboxed_warning(settings: Settings) -> str | None:
    """What to tell the operator at start when workers run unsandboxed."""
    if settings.sandbox != "none":
        return None
    who = "as root" if os.geteuid() == 0 else "as this server's user"
    return (
        f"RUNYARD_SANDBOX=none: workers are NOT sandboxed and run {who}: any worker can read "
        "the database, secret.key, exports and other runs' files (docs/workers.md, Trust)"
    )


@dataclass(frozen=True)
class Init:
    """The sandbox's first process (the shell), as this host sees it."""

    pid: int
    #: Cannot reach another process that gets the same pid later.
    pidfd: int

    def alive(self) -> bool:
        return not select.select([self.pidfd], [], [], 0)[0]

    def close(self) -> None:
        os.close(self.pidfd)


def started(info_fd: int, is_ours: Callable[[int], bool]) -> Init | None:
    """The sandbox's first process, from what bwrap writes to ``info_fd`` (closed here); None
    if bwrap failed before starting it, or it is gone already (``is_ours`` tells the run's
    processes from one that took a freed pid)."""
    text = b""
    try:
        for chunk in _read_all(info_fd):
            text += chunk
    finally:
        os.close(info_fd)
    try:
        pid = int(json.loads(text)["child-pid"])
        init = Init(pid, os.pidfd_open(pid))
    except (ValueError, KeyError, TypeError, OSError):
        return None
    # The pid was read before the pidfd was opened: make sure it is still the run's process.
    if is_ours(pid) and init.alive():
        return init
    init.close()
    return None


def _read_all(fd: int) -> Iterator[bytes]:
    while select.select([fd], [], [], INFO_TIMEOUT_SECONDS)[0]:
        chunk = os.read(fd, 4096)
        if not chunk:
            return
        yield chunk


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and fields[1] == str(pid).encode():
            found.append(int(entry.name))
    return found


def kill(init: Init) -> None:
    """Kill the worker: the shell's children, which it reaps (so their CPU time is counted),
    then it exits and the kernel kills the rest of the namespace; the shell itself when it has
    none (not started yet, or gone)."""
    killed = False
    if init.alive():  # its pid cannot have been reused: its children are the sandbox's
        for pid in _children(init.pid):
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                continue  # ended meanwhile
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                killed = True
            except OSError:
                pass
            finally:
                os.close(pidfd)
    if not killed:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(init.pidfd, signal.SIGKILL)
