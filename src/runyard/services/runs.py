"""Run records: lookup for the caller, creation, and the wire shape of spec §3."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select
from ulid import ULID

from runyard.services.errors import NotFound
from runyard.storage import Database, Run, Worker

FINISHED = frozenset({"succeeded", "failed"})
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


class Runs:
    def __init__(self, db: Database) -> None:
        self.db = db

    def find(self, user_id: int, run_slug: str) -> tuple[Run, Worker]:
        """The caller's run (``last``: their newest); another user's run is NotFound."""
        query = select(Run, Worker).join(Worker, Worker.id == Run.worker_id)
        query = query.where(Run.user_id == user_id)
        if run_slug == LAST:
            query = query.order_by(Run.created_at.desc(), Run.id.desc()).limit(1)
        else:
            query = query.where(Run.slug == run_slug)
        with self.db.session() as s:
            row = s.execute(query).first()
        if row is None:
            raise NotFound("run not found")
        return row[0], row[1]

    def get(self, user_id: int, run_slug: str) -> RunRecord:
        run, worker = self.find(user_id, run_slug)
        return _record(run, worker, time.time())

    def ensure_worker(self, user_id: int, slug: str) -> int:
        """The id of the user's worker ``slug``, registering a bare one if it is new (imports)."""
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

    def delete(self, run_id: int) -> None:
        with self.db.session() as s, s.begin():
            run = s.get(Run, run_id)
            if run is not None:
                s.delete(run)
