"""Run records: lookup for the caller, creation, and the wire shape of spec §3."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, select, update
from sqlalchemy.orm import Session
from ulid import ULID

from runyard.services.errors import InvalidInput, NotFound
from runyard.services.packages import SLUG_RE
from runyard.services.paging import fetch_page
from runyard.storage import Database, RawQuery, Run, User, Worker

FINISHED = frozenset({"succeeded", "failed"})
#: The ``version`` of runs made by ``runyard runs import``.
IMPORT_VERSION = "import"
#: ``GET /worker-runs/last/...`` names the caller's newest run this way.
LAST = "last"


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


def check_slug(slug: str) -> str:
    if not SLUG_RE.match(slug):
        raise InvalidInput(
            f"invalid worker slug {slug!r}: use 1-128 lowercase letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return slug


def new_slug() -> str:
    return str(ULID())


def run_duration(run: Run, now: float) -> int:
    """Seconds run so far, or in total once finished."""
    if run.started_at == 0:
        return 0
    if run.finished_at:
        return run.finished_at - run.started_at
    return max(0, int(now) - run.started_at)


def record(run: Run, worker: Worker, now: float) -> RunRecord:
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
        duration=run_duration(run, now),
        err_msg=run.err_msg or "",
    )


def worker_is(worker_id: str) -> ColumnElement[bool]:
    """The worker a ``workerId`` names: its slug, or its path ``owner~slug``."""
    owner, sep, slug = worker_id.rpartition("~")
    if not sep:
        return Worker.slug == worker_id
    owner_id = select(User.id).where(User.name == owner).scalar_subquery()
    return (Worker.slug == slug) & (Worker.user_id == owner_id)


class Runs:
    def __init__(self, db: Database) -> None:
        self.db = db
        #: Told of every committed state change (callbacks hang here).
        self.on_change: Callable[..., object] | None = None
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
            query = query.where(worker_is(worker_id))
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

    def get(self, user_id: int, run_slug: str, worker_id: str | None = None) -> RunRecord:
        run, worker = self.find(user_id, run_slug, worker_id)
        return record(run, worker, time.time())

    def ensure_worker(self, user_id: int, slug: str) -> int:
        """The id of the user's worker ``slug``, registering a bare one if it is new (imports)."""
        check_slug(slug)
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
        self,
        user_id: int,
        worker_id: int,
        *,
        version: str,
        origin: str,
        status: str,
        input: str = "{}",
        system: str = "{}",
        callback_url: str | None = None,
        task_id: int | None = None,
        admit: Callable[[Session, int], None] | None = None,
    ) -> tuple[int, str]:
        """Insert a run. ``admit(session, user_id)`` may refuse it inside the same transaction,
        which first takes the user row's write lock so that admissions are serialized."""
        now = time.time()
        run = Run(
            task_id=task_id,
            input=input,
            system=system,
            callback_url=callback_url,
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
            if admit is not None:
                # A write first: SQLite then holds its write lock for the whole check, and
                # PostgreSQL the user's row lock.
                s.execute(update(User).where(User.id == user_id).values(id=User.id))
                admit(s, user_id)
            s.add(run)
            s.flush()
        return run.id, run.slug

    def transition(
        self,
        run_id: int,
        status: str,
        *,
        only_from: Collection[str] = (),
        only_if: ColumnElement[bool] | None = None,
        **values: Any,
    ) -> Run | None:
        """Commit one state change (with ``values``); ``None`` if the run was not in
        ``only_from`` (when given), or ``only_if`` (a condition checked in the same statement)
        did not hold. Every change is reported to ``on_change(run, session=...)`` inside its
        transaction.
        """
        if status in FINISHED:
            values.setdefault("finished_at", int(time.time()))
            values.setdefault("pid", None)
        stmt = update(Run).where(Run.id == run_id).values(status=status, **values)
        if only_from:
            stmt = stmt.where(Run.status.in_(only_from))
        if only_if is not None:
            stmt = stmt.where(only_if)
        with self.db.session() as s, s.begin():
            if s.execute(stmt).rowcount == 0:  # type: ignore[attr-defined]
                return None
            run = s.get(Run, run_id, populate_existing=True)
            if run is not None and self.on_change is not None:
                # In the same transaction: a change is never committed without its callback.
                self.on_change(run, session=s)
        return run

    def finish(self, run_id: int, status: str, err_msg: str | None = None) -> None:
        if self.transition(run_id, status, err_msg=err_msg) is None:
            raise NotFound("run not found")

    def claim(
        self, run_id: int, executor: str, *, only_if: ColumnElement[bool] | None = None
    ) -> bool:
        """Move the run from ``ready`` to ``running`` for ``executor``; whether this call did.

        A conditional update, and nothing ever moves a run back to ``ready``: however many
        executors try, and however often, one claim succeeds, once. ``only_if`` is checked in
        the same statement (an execution node's lease).
        """
        claimed = self.transition(
            run_id,
            "running",
            only_from=("ready",),
            only_if=only_if,
            executor=executor,
            started_at=int(time.time()),
        )
        return claimed is not None

    def claim_next(self, executor: str) -> int | None:
        """Move the oldest ``ready`` run to ``running`` for ``executor``; its id, or None."""
        while True:
            with self.db.session() as s:
                run_id = s.scalar(
                    select(Run.id)
                    .where(Run.status == "ready")
                    .order_by(Run.created_at, Run.id)
                    .limit(1)
                )
            if run_id is None:
                return None
            if self.claim(run_id, executor):
                return run_id

    def fail_owned(
        self,
        executor: str,
        statuses: Collection[str],
        err_msg: str,
        *,
        only_if: ColumnElement[bool] | None = None,
        session: Session | None = None,
    ) -> list[int]:
        """Fail every run of ``executor`` in ``statuses`` — in one statement, and only while
        ``only_if`` holds when given — reporting each change; the ids failed. Inside the
        caller's transaction when ``session`` is given, else in one of its own.

        Whoever calls this concurrently, each run is failed (and reported) once.
        """
        stmt = (
            update(Run)
            .where(Run.executor == executor, Run.status.in_(statuses))
            .values(status="failed", err_msg=err_msg, finished_at=int(time.time()), pid=None)
            .returning(Run.id)
        )
        if only_if is not None:
            stmt = stmt.where(only_if)
        if session is not None:
            return self._fail(session, stmt)
        with self.db.session() as s, s.begin():
            return self._fail(s, stmt)

    def _fail(self, s: Session, stmt: Any) -> list[int]:
        failed = list(s.scalars(stmt))
        for run_id in failed:
            run = s.get(Run, run_id, populate_existing=True)
            if run is not None and self.on_change is not None:
                self.on_change(run, session=s)
        return failed

    def mark_queued(self, run_id: int, when: float) -> None:
        """Record that the run was handed to the broker at ``when``."""
        with self.db.session() as s, s.begin():
            s.execute(update(Run).where(Run.id == run_id).values(queued_at=when))

    def stale_ready(self, before: float, limit: int = 100) -> list[tuple[int, float | None]]:
        """``(id, queued_at)`` of ``ready`` runs last handed to the broker before ``before``
        (or never, and made before it), oldest first."""
        last_sent = func.coalesce(Run.queued_at, Run.created_at)
        with self.db.session() as s:
            rows = s.execute(
                select(Run.id, Run.queued_at)
                .where(Run.status == "ready", last_sent < before)
                .order_by(Run.created_at, Run.id)
                .limit(limit)
            ).all()
        return [(run_id, queued_at) for run_id, queued_at in rows]

    def requeue(self, run_id: int, seen_queued_at: float | None, now: float) -> bool:
        """Mark a stale run queued again, if it is still ``ready`` and nobody else did so
        since ``seen_queued_at`` was read: of several callers, one gets to send it."""
        same = (
            Run.queued_at.is_(None) if seen_queued_at is None else Run.queued_at == seen_queued_at
        )
        with self.db.session() as s, s.begin():
            changed = s.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == "ready", same)
                .values(queued_at=now)
            )
            return bool(changed.rowcount)  # type: ignore[attr-defined]

    def owned_by(self, executor: str, statuses: Collection[str]) -> list[Run]:
        with self.db.session() as s:
            return list(
                s.scalars(select(Run).where(Run.executor == executor, Run.status.in_(statuses)))
            )

    def id_of(self, run_slug: str) -> int:
        """Any user's run by slug: only for callers that proved their right (signed links)."""
        with self.db.session() as s:
            run_id = s.scalar(select(Run.id).where(Run.slug == run_slug))
        if run_id is None:
            raise NotFound("run not found")
        return run_id

    def status(self, run_id: int) -> str | None:
        with self.db.session() as s:
            return s.scalar(select(Run.status).where(Run.id == run_id))

    def set_pid(self, run_id: int, pid: int | None) -> None:
        with self.db.session() as s, s.begin():
            s.execute(update(Run).where(Run.id == run_id).values(pid=pid))

    def list_runs(
        self,
        user_id: int,
        *,
        offset: int,
        limit: int,
        worker_id: str | None = None,
        status: str | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
    ) -> tuple[int, list[RunRecord]]:
        """The caller's runs, newest first, with the filters of ``GET /worker-runs``."""
        where: list[ColumnElement[bool]] = [Run.user_id == user_id]
        if worker_id is not None:
            where.append(worker_is(worker_id))
        if status is not None:
            where.append(Run.status == status)
        if start_time is not None:
            where.append(Run.created_at >= start_time)
        if end_time is not None:
            where.append(Run.created_at < end_time + 1)
        base = select(Run, Worker).join(Worker, Worker.id == Run.worker_id).where(*where)
        now = time.time()
        with self.db.session() as s:
            count, rows = fetch_page(s, base, (Run.created_at.desc(), Run.id.desc()), offset, limit)
        return count, [record(run, worker, now) for run, worker in rows]

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
