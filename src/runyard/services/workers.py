"""Workers and their versions: registration, listing, detail and the version a run gets."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from sqlalchemy import ColumnElement, case, func, or_, select
from sqlalchemy.exc import IntegrityError
from ulid import ULID

from runyard.execution.venvs import RequirementsFailed, VenvBuilder
from runyard.services.errors import InvalidInput, NotFound, VersionNotFound
from runyard.services.inputs import schema_properties, system_defaults
from runyard.services.packages import (
    MAX_ZIP_BYTES,
    VERSION_RE,
    Package,
    extract_zip,
    load_package,
)
from runyard.services.paging import fetch_page
from runyard.services.runs import check_slug, worker_is
from runyard.settings import Settings
from runyard.storage import Database, User, Worker, WorkerVersion

LATEST = "latest"
FIRST_VERSION = "1.0.0"
_NUMBERED = re.compile(r"^(.*?)(\d+)$")
#: Column sizes of ``workers.title`` and a sane bound for descriptions.
TITLE_CHARS = 256
DESCRIPTION_CHARS = 10_000


def _check_text(field: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise InvalidInput(f"{field} is longer than {limit} characters")


def _exists(slug: str, version: str) -> InvalidInput:
    return InvalidInput(
        f"version {version} of {slug} already exists: versions are immutable, register a new one"
    )


@dataclass(frozen=True)
class WorkerSummary:
    """An item of ``GET /workers`` (spec §4)."""

    description: str
    name: str
    path: str
    slug: str
    title: str
    username: str


@dataclass(frozen=True)
class WorkerDetail:
    """``GET /workers/{workerId}`` (spec §4)."""

    name: str
    title: str
    slug: str
    username: str
    version: str
    readme: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Registered:
    slug: str
    version: str
    python: str


def next_version(latest: str | None) -> str:
    """The version after ``latest`` when the package names none: its last number plus one."""
    if latest is None:
        return FIRST_VERSION
    match = _NUMBERED.match(latest)
    if match is None:
        raise InvalidInput(
            f"cannot number the version after {latest!r}: give one (worker.json or --version)"
        )
    return f"{match[1]}{int(match[2]) + 1}"


def _summary(worker: Worker, username: str) -> WorkerSummary:
    return WorkerSummary(
        description=worker.description,
        name=worker.slug,
        path=f"{username}/{worker.slug}",
        slug=worker.slug,
        title=worker.title,
        username=username,
    )


class Workers:
    def __init__(self, db: Database, settings: Settings, venvs: VenvBuilder) -> None:
        self.db = db
        self.settings = settings
        self.venvs = venvs

    # --- registration ---------------------------------------------------------------------

    def register(
        self,
        user_id: int,
        package: Package,
        *,
        slug: str | None = None,
        version: str | None = None,
        title: str | None = None,
        description: str | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> Registered:
        """Register ``package`` as a new version of the caller's worker (made if new).

        ``slug`` (the URL's worker) wins over ``worker.json``, which wins over the directory's
        name; versions are immutable, so registering an existing one is refused.
        """
        if slug is not None and package.slug is not None and package.slug != slug:
            raise InvalidInput(
                f"worker.json names worker {package.slug!r}, but the upload is for {slug!r}"
            )
        slug = check_slug(slug or package.slug or package.root.name)
        _check_text("title", title, TITLE_CHARS)
        _check_text("description", description, DESCRIPTION_CHARS)
        with self.db.session() as s:
            worker = s.scalar(select(Worker).where(Worker.user_id == user_id, Worker.slug == slug))
            version = (
                version
                or package.version
                or next_version(worker.latest_version if worker else None)
            )
            if not VERSION_RE.match(version) or version.lower() == LATEST:
                raise InvalidInput(
                    f"invalid version {version!r}: use 1-64 letters, digits, '.', '_', '+' or "
                    "'-', starting with a letter or digit (and not 'latest')"
                )
            if worker is not None and s.scalar(
                select(WorkerVersion.id).where(
                    WorkerVersion.worker_id == worker.id, WorkerVersion.version == version
                )
            ):
                raise _exists(slug, version)
        try:
            python = self.venvs.python_for(package.requirements, on_progress=on_progress)
        except RequirementsFailed as exc:
            raise InvalidInput(exc.message, exc.details) from None
        path = self._keep_files(package.root, user_id, slug)
        now = time.time()
        try:
            with self.db.session() as s, s.begin():
                worker = s.scalar(
                    select(Worker).where(Worker.user_id == user_id, Worker.slug == slug)
                )
                if worker is None:
                    worker = Worker(user_id=user_id, slug=slug, created_at=now)
                    s.add(worker)
                worker.title = title or package.title or worker.title or slug
                worker.description = description or package.description or worker.description or ""
                worker.public = package.public
                worker.latest_version = version
                s.flush()
                s.add(
                    WorkerVersion(
                        worker_id=worker.id,
                        version=version,
                        path=str(path),
                        input_schema=orjson.dumps(package.input_schema).decode(),
                        output_schema=orjson.dumps(package.output_schema).decode(),
                        readme=package.readme,
                        python=python,
                        created_at=now,
                    )
                )
        except IntegrityError:
            # Another registration of the same version (or first one of the worker) won.
            shutil.rmtree(path, ignore_errors=True)
            raise _exists(slug, version) from None
        return Registered(slug, version, python)

    def register_upload(
        self,
        user_id: int,
        worker_id: str,
        upload: BinaryIO,
        *,
        version: str | None = None,
        title: str | None = None,
        description: str | None = None,
    ) -> Registered:
        """``POST /workers/{workerId}/versions``: a ZIP of the package, for the caller's worker."""
        owner, sep, slug = worker_id.rpartition("~")
        if sep:
            # Another user's path is a worker the caller cannot publish to: 404, as if missing.
            self.require_self(user_id, owner)
        with tempfile.TemporaryDirectory(dir=self.settings.data_dir) as tmp:
            archive = Path(tmp) / "upload.zip"
            with open(archive, "wb") as out:
                size = 0
                while chunk := upload.read(1 << 20):
                    size += len(chunk)
                    if size > MAX_ZIP_BYTES:
                        raise InvalidInput(f"scraper_file is larger than {MAX_ZIP_BYTES >> 20} MB")
                    out.write(chunk)
            root = extract_zip(archive, Path(tmp) / "package")
            return self.register(
                user_id,
                load_package(root),
                slug=slug,
                version=version,
                title=title,
                description=description,
            )

    def _keep_files(self, root: Path, user_id: int, slug: str) -> Path:
        """A private copy of the package in a directory of its own, put in place whole.

        Named by a fresh ULID, not the version: two registrations racing for one version can
        never write into, or delete, each other's files.
        """
        dest = self.settings.packages_dir / str(user_id) / slug / str(ULID())
        tmp = dest.with_name(f".{dest.name}")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(root, tmp, ignore=shutil.ignore_patterns("__pycache__", ".git", ".venv"))
        tmp.rename(dest)
        return dest

    # --- reading ------------------------------------------------------------------------------

    def _find(self, user_id: int | None, worker_id: str) -> tuple[Worker, str]:
        """The worker ``worker_id`` names among the caller's own and the public ones.

        The caller's own worker wins over another user's public one with the same slug.
        """
        visible: ColumnElement[bool] = Worker.public.is_(True)
        if user_id is not None:
            visible = or_(Worker.user_id == user_id, visible)
        query = (
            select(Worker, User.name)
            .join(User, User.id == Worker.user_id)
            .where(worker_is(worker_id), visible)
            .order_by(case((Worker.user_id == (user_id or -1), 0), else_=1), Worker.id)
            .limit(1)
        )
        with self.db.session() as s:
            row = s.execute(query).first()
        if row is None:
            raise NotFound("worker not found")
        return row[0], row[1]

    def version(self, user_id: int, worker_id: str, version: str | None) -> WorkerVersion:
        """The version a run of ``worker_id`` gets (``None`` or ``latest``: the newest)."""
        worker, _ = self._find(user_id, worker_id)
        return self.version_of(worker, version)

    def version_for_rerun(self, user_id: int, worker_db_id: int, version: str) -> WorkerVersion:
        """The version a rerun gets, if the worker is still the caller's or public."""
        with self.db.session() as s:
            worker = s.scalar(
                select(Worker).where(
                    Worker.id == worker_db_id,
                    or_(Worker.user_id == user_id, Worker.public.is_(True)),
                )
            )
        if worker is None:
            raise NotFound("worker not found")
        return self.version_of(worker, version)

    def version_of(self, worker: Worker, version: str | None) -> WorkerVersion:
        name = worker.latest_version if version in (None, LATEST) else version
        if name is None:
            raise VersionNotFound(f"worker {worker.slug} has no registered version")
        with self.db.session() as s:
            found = s.scalar(
                select(WorkerVersion).where(
                    WorkerVersion.worker_id == worker.id, WorkerVersion.version == name
                )
            )
        if found is None:
            raise VersionNotFound(f"version {name} of worker {worker.slug} does not exist")
        return found

    def list_workers(
        self, user_id: int, *, offset: int, limit: int, keyword: str | None = None
    ) -> tuple[int, list[WorkerSummary]]:
        """The caller's workers, newest first; ``keyword`` matches title, slug or path."""
        return self._list(Worker.user_id == user_id, offset, limit, keyword)

    def list_public(
        self, *, offset: int, limit: int, keyword: str | None = None
    ) -> tuple[int, list[WorkerSummary]]:
        """``GET /store``: every user's published workers, newest first."""
        return self._list(Worker.public.is_(True), offset, limit, keyword)

    def _list(
        self, which: ColumnElement[bool], offset: int, limit: int, keyword: str | None
    ) -> tuple[int, list[WorkerSummary]]:
        where: list[ColumnElement[bool]] = [which]
        if keyword:
            # ``autoescape``: a ``%`` or ``_`` in the keyword is a character, not a wildcard.
            word = keyword.lower()
            where.append(
                or_(
                    func.lower(Worker.title).contains(word, autoescape=True),
                    Worker.slug.contains(word, autoescape=True),
                    func.lower(User.name + "/" + Worker.slug).contains(word, autoescape=True),
                )
            )
        base = select(Worker, User.name).join(User, User.id == Worker.user_id).where(*where)
        with self.db.session() as s:
            count, rows = fetch_page(
                s, base, (Worker.created_at.desc(), Worker.id.desc()), offset, limit
            )
        return count, [_summary(worker, name) for worker, name in rows]

    def detail(self, user_id: int, worker_id: str) -> WorkerDetail:
        worker, username = self._find(user_id, worker_id)
        version = self.version_of(worker, None) if worker.latest_version else None
        schema = orjson.loads(version.input_schema) if version else {"properties": []}
        return WorkerDetail(
            name=worker.slug,
            title=worker.title,
            slug=worker.slug,
            username=username,
            version=version.version if version else "",
            readme=version.readme if version else "",
            parameters={
                "custom": {"properties": schema_properties(schema)},
                "system": system_defaults(self.settings.run_timeout_seconds),
            },
        )

    def input_schema(self, user_id: int | None, worker_id: str) -> dict[str, Any]:
        """The newest version's ``input_schema.json``; public workers need no key."""
        worker, _ = self._find(user_id, worker_id)
        if worker.latest_version is None:
            return {"properties": []}
        value: dict[str, Any] = orjson.loads(self.version_of(worker, None).input_schema)
        return value

    def require_self(self, user_id: int, username: str) -> None:
        """``username`` must be the caller: publishing goes to one's own workers only."""
        with self.db.session() as s:
            name = s.scalar(select(User.name).where(User.id == user_id))
        if name != username:
            raise NotFound("worker not found")
