"""Export files: recorded at once as a snapshot, produced in the background, served by link.

The export call answers in constant time whatever the run's size: it records the export (run,
format, keys, and the row count at that moment — the snapshot) and returns a signed link. The
file is written by a background thread through the format's writer, batch by batch, and only
published once complete; a download that arrives first waits for it. A finished run's identical
export is reused rather than written again.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from runyard.formats import FORMATS, get_writer
from runyard.services.errors import ExportFailed, InvalidInput, NotFound
from runyard.services.links import LinkSigner
from runyard.services.runs import FINISHED, Runs, new_slug
from runyard.storage import Database, Export, FileStore, RowStore, Run, Worker
from runyard.storage.database import StorageFull, as_storage_error

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DownloadFile:
    path: Path
    filename: str
    media_type: str


def parse_format(value: str) -> str:
    fmt = value.strip().lower()
    if fmt not in FORMATS:
        raise InvalidInput(
            f"unsupported export format {value!r}",
            [f"format must be one of: {', '.join(FORMATS)}"],
        )
    return fmt


def parse_filter_keys(value: str | list[str] | None) -> list[str] | None:
    """Trimmed, empty items dropped, duplicates dropped, order kept; nothing left → all columns.

    A list (the console's tick boxes) is taken as it is, so a key may hold a comma or spaces.
    """
    if value is None:
        return None
    if isinstance(value, list):
        return list(dict.fromkeys(k for k in value if k)) or None
    keys = list(dict.fromkeys(k.strip() for k in value.split(",") if k.strip()))
    return keys or None


def csv_options(bom: bool, delimiter: str) -> dict[str, Any]:
    options = {"bom": bom, "delimiter": delimiter}
    try:
        get_writer("csv", **options)  # the writer is the one judge of its options
    except ValueError as exc:
        raise InvalidInput(f"invalid delimiter {delimiter!r}", [str(exc)]) from None
    return options


def _file_name(export: Export) -> str:
    return f"{export.slug}.{get_writer(export.format).extension}"


def download_name(worker: Worker, run: Run, fmt: str) -> str:
    return f"{worker.slug}_{run.slug}.{get_writer(fmt).extension}"


class Exports:
    def __init__(
        self,
        db: Database,
        rows: RowStore,
        files: FileStore,
        runs: Runs,
        signer: LinkSigner,
        *,
        threads: int = 2,
    ) -> None:
        self.db = db
        self.rows = rows
        self.files = files
        self.runs = runs
        self.signer = signer
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="runyard-export")
        self._jobs: dict[int, Future[None]] = {}
        self._lock = threading.Lock()

    def request(
        self,
        user_id: int,
        run_slug: str,
        *,
        fmt: str,
        filter_keys: str | list[str] | None,
        base_url: str,
        worker_id: str | None = None,
        bom: bool = True,
        delimiter: str = ",",
    ) -> str:
        """Record an export of the run's current rows and return its absolute download link.

        ``run_slug`` may be ``last`` (the caller's newest run, of ``worker_id`` when given).
        ``bom`` and ``delimiter`` apply to CSV only.
        """
        fmt = parse_format(fmt)
        keys = parse_filter_keys(filter_keys)
        keys_json = orjson.dumps(keys).decode() if keys is not None else None
        options = csv_options(bom, delimiter) if fmt == "csv" else {}
        options_json = orjson.dumps(options, option=orjson.OPT_SORT_KEYS).decode()
        run, worker = self.runs.find(user_id, run_slug, worker_id)
        expires = self.signer.expiry()
        with self.db.session() as s, s.begin():
            export = None
            if run.status in FINISHED:
                export = s.scalars(
                    select(Export).where(
                        Export.run_id == run.id,
                        Export.format == fmt,
                        Export.keys.is_(None) if keys_json is None else Export.keys == keys_json,
                        Export.options == options_json,
                        Export.row_count == run.results,
                        Export.status != "failed",
                    )
                ).first()
            if export is None:
                export = Export(
                    slug=new_slug(),
                    run_id=run.id,
                    format=fmt,
                    keys=keys_json,
                    columns=orjson.dumps(
                        keys if keys is not None else [c["key"] for c in orjson.loads(run.columns)]
                    ).decode(),
                    options=options_json,
                    row_count=run.results,
                    status="pending",
                    truncated_cells=0,
                    created_at=time.time(),
                    links_expire_at=expires,
                )
                s.add(export)
                s.flush()
            else:
                export.links_expire_at = max(export.links_expire_at, expires)
        if export.status == "pending":
            self._start(export.id)
        return self.signer.url(
            base_url, export.slug, download_name(worker, run, fmt), expires=expires
        )

    def resolve(self, name: str, filename: str, expires: int, signature: str) -> DownloadFile:
        """The complete file behind a signed link, waiting for it to be written if need be."""
        self.signer.verify(name, filename, expires, signature)
        self.wait(self.get(name).id)
        export = self.get(name)
        if export.status == "failed":
            raise ExportFailed("the export failed; ask for a new export")
        path = self._ready_path(export)
        if path is None:
            raise NotFound("export file is not available")
        return DownloadFile(path, filename, get_writer(export.format).media_type)

    def wait(self, export_id: int) -> None:
        """Block until the export is ready or has failed, producing it if nobody is.

        A failed export stays failed: a link must not let anyone make the server redo it.
        """
        with self.db.session() as s:
            export = s.get(Export, export_id)
        if export is None:
            raise NotFound("export not found")
        if export.status != "failed" and self._ready_path(export) is None:
            self._start(export_id).result()

    def get(self, name: str) -> Export:
        """The export behind a link name."""
        with self.db.session() as s:
            export = s.scalar(select(Export).where(Export.slug == name))
        if export is None:
            raise NotFound("export not found")
        return export

    def _ready_path(self, export: Export) -> Path | None:
        return self.files.path(_file_name(export)) if export.status == "ready" else None

    def _start(self, export_id: int) -> Future[None]:
        with self._lock:
            job = self._jobs.get(export_id)
            if job is None or job.done():
                job = self._pool.submit(self._produce, export_id)
                self._jobs[export_id] = job
        # Outside the lock: a job already done runs this callback at once, in this thread.
        job.add_done_callback(lambda _f: self._forget(export_id))
        return job

    def _forget(self, export_id: int) -> None:
        with self._lock:
            job = self._jobs.get(export_id)
            if job is not None and job.done():
                del self._jobs[export_id]

    def _produce(self, export_id: int) -> None:
        with self.db.session() as s:
            export = s.get(Export, export_id)
            if export is None:
                return
            run, worker = s.execute(
                select(Run, Worker)
                .join(Worker, Worker.id == Run.worker_id)
                .where(Run.id == export.run_id)
            ).one()
        if self._ready_path(export) is not None:
            return
        options: dict[str, Any] = orjson.loads(export.options)
        if export.format == "rss":
            options["channel_title"] = worker.title
        writer = get_writer(export.format, **options)
        started = time.perf_counter()
        try:
            with self.files.writing(_file_name(export)) as tmp:
                stats = writer.write(
                    tmp,
                    orjson.loads(export.columns),
                    self.rows.iter_batches(run.id, export.row_count),
                    projected=export.keys is not None,
                )
                if stats.rows != export.row_count:
                    raise RuntimeError(
                        f"{stats.rows} rows read where the snapshot has {export.row_count}"
                    )
                size = tmp.stat().st_size
        except Exception as exc:
            problem = as_storage_error(exc)
            if isinstance(problem, StorageFull):
                # Not the export's fault: it stays pending, its half file is gone, and the
                # next download writes it again once there is room (429 until then).
                log.error(
                    "export %s (%s) could not be written: %s", export.slug, export.format, problem
                )
                raise problem from exc
            log.exception("export %s (%s) failed", export.slug, export.format)
            self._set(export_id, status="failed", error=str(exc)[:500])
            return
        if stats.truncated_cells:
            log.warning(
                "export %s of run %s: %d cells cut to the format's size limit",
                export.slug,
                run.slug,
                stats.truncated_cells,
            )
        self._set(export_id, status="ready", size=size, truncated_cells=stats.truncated_cells)
        log.info(
            "export %s of run %s: %d rows as %s in %.2fs",
            export.slug,
            run.slug,
            stats.rows,
            export.format,
            time.perf_counter() - started,
        )

    def sweep(self, now: float | None = None) -> int:
        """Delete exports (file and record) whose every link has expired; returns how many.

        Also removes the temporary files of exports whose writer is gone (a crash, ``kill -9``:
        the server sweeps as it starts), and any left untouched for an hour.
        """
        now = time.time() if now is None else now
        abandoned = self.files.sweep_abandoned()
        if abandoned:
            log.info("removed %d half-written export files left by a crash", abandoned)
        self.files.sweep_temporary(older_than=now - 3600)
        removed = 0
        with self.db.session() as s, s.begin():
            for export in s.scalars(select(Export).where(Export.links_expire_at < now)):
                with self._lock:
                    if export.id in self._jobs:  # still being written: the next sweep
                        continue
                self.files.delete(_file_name(export))
                s.delete(export)
                removed += 1
        return removed

    def _set(self, export_id: int, **values: Any) -> None:
        with self.db.session() as s, s.begin():
            export = s.get(Export, export_id)
            if export is not None:
                for key, value in values.items():
                    setattr(export, key, value)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
