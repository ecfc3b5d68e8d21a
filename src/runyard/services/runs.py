"""Run records: lookup for the caller, creation, and the wire shape of spec §3."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from sqlalchemy import ColumnElement, bindparam, select
from ulid import ULID

from runyard.services.errors import InvalidInput, NotFound
from runyard.storage import Database, RawQuery, Run, User, Worker

FINISHED = frozenset({"succeeded", "failed"})
#: The ``version`` of runs made by ``runyard runs import``.
IMPORT_VERSION = "import"
#: ``GET /worker-runs/last/...`` names the caller's newest run this way.
LAST = "last"
_WORKER_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class RunRecord:
    """The run record of spec §3, field for field."""

    slug: str
    scraper_slug: str
    scraper_title: str
    version: str
    status: str
    results: int
    usage: str
    traffic: int
    origin: str
    started_at: int
    finished_at: int
    duration: int
    err_msg: str


def new_slug() -> str:
    return str(ULID())


def _record(run: Run, worker: Worker, now: float) -> RunRecord:
    if run.started_at == 0:
        duration = 0
    elif run.finished_at:
        duration = run.finished_at - run.started_at
    else:
        duration = max(0, int(now) - run.started_at)
    return RunRecord(
        slug=run.slug,
        scraper_slug=worker.slug,
        scraper_title=worker.title,
        version=run.version,
        status=run.status,
        results=run.results,
        usage=run.usage,
        traffic=run.traffic,
        origin=run.origin,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration=duration,
        err_msg=run.err_msg or "",
    )


def _worker_is(worker_id: str) -> ColumnElement[bool]:
    """The worker a ``workerId`` names: its slug, or its path ``owner~slug``."""
    owner, sep, slug = worker_id.rpartition("~")
    if not sep:
        return Worker.slug == worker_id
    owner_id = select(User.id).where(User.name == owner).scalar_subquery()
    return (Worker.slug == slug) & (Worker.user_id == owner_id)


class Runs:
    def __init__(self, db: Database) -> None:
        self.db = db
        # The hot path of every result page: (id, results, columns) on a raw cursor.
        base = select(Run.id, Run.results, Run.columns).where(Run.user_id == bindparam("user"))
        self._by_slug = RawQuery(db.engine, base.where(Run.slug == bindparam("slug")))
        self._last = RawQuery(
            db.engine, base.order_by(Run.created_at.desc(), Run.id.desc()).limit(1)
        )

    def find(self, user_id: int, run_slug: str, worker_id: str | None = None) -> tuple[Run, Worker]:
        """The caller's run; ``last`` is their newest (of ``worker_id`` when given).

        Another user's run is NotFound, exactly like a missing one.
        """
        query = select(Run, Worker).join(Worker, Worker.id == Run.worker_id)
        query = query.where(Run.user_id == user_id)
        if worker_id is not None:
            query = query.where(_worker_is(worker_id))
        if run_slug == LAST:
            query = query.order_by(Run.created_at.desc(), Run.id.desc()).limit(1)
        else:
            query = query.where(Run.slug == run_slug)
        with self.db.session() as s:
            row = s.execute(query).first()
        if row is None:
            raise NotFound("run not found")
        return row[0], row[1]

    def locate(
        self, user_id: int, run_slug: str, worker_id: str | None = None
    ) -> tuple[int, int, str]:
        """``(id, results, columns)`` of the run ``find`` names — without the ORM."""
        if worker_id is not None:
            run, _ = self.find(user_id, run_slug, worker_id)
            return run.id, run.results, run.columns
        if run_slug == LAST:
            row = self._last.first(user=user_id)
        else:
            row = self._by_slug.first(user=user_id, slug=run_slug)
        if row is None:
            raise NotFound("run not found")
        return row[0], row[1], row[2]

    def get(self, user_id: int, run_slug: str) -> RunRecord:
        run, worker = self.find(user_id, run_slug)
        return _record(run, worker, time.time())

    def ensure_worker(self, user_id: int, slug: str) -> int:
        """The id of the user's worker ``slug``, registering a bare one if it is new (imports)."""
        if not _WORKER_SLUG.match(slug):
            raise InvalidInput(
                f"invalid worker slug {slug!r}: use 1-128 lowercase letters, digits, '.', '_' "
                "or '-', starting with a letter or digit"
            )
        with self.db.session() as s, s.begin():
            wid = s.scalar(select(Worker.id).where(Worker.user_id == user_id, Worker.slug == slug))
            if wid is None:
                worker = Worker(
                    user_id=user_id, slug=slug, title=slug, description="", created_at=time.time()
                )
                s.add(worker)
                s.flush()
                wid = worker.id
            return wid

    def create(
        self, user_id: int, worker_id: int, *, version: str, origin: str, status: str
    ) -> tuple[int, str]:
        now = time.time()
        run = Run(
            slug=new_slug(),
            user_id=user_id,
            worker_id=worker_id,
            version=version,
            status=status,
            origin=origin,
            results=0,
            columns="[]",
            usage="0.0000",
            traffic=0,
            created_at=now,
            started_at=int(now) if status != "ready" else 0,
            finished_at=0,
        )
        with self.db.session() as s, s.begin():
            s.add(run)
            s.flush()
            return run.id, run.slug

    def finish(self, run_id: int, status: str, err_msg: str | None = None) -> None:
        with self.db.session() as s, s.begin():
            run = s.get(Run, run_id)
            if run is None:
                raise NotFound("run not found")
            run.status = status
            run.finished_at = int(time.time())
            run.err_msg = err_msg

    def running_import(self, slug: str) -> int | None:
        """The id of the import ``slug`` if it is still marked running."""
        with self.db.session() as s:
            return s.scalar(
                select(Run.id).where(
                    Run.slug == slug, Run.version == IMPORT_VERSION, Run.status == "running"
                )
            )

    def delete(self, run_id: int) -> None:
        with self.db.session() as s, s.begin():
            run = s.get(Run, run_id)
            if run is not None:
                s.delete(run)
