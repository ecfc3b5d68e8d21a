"""Metadata tables. Result rows live in ``result_rows`` (see ``rowstore``), not as ORM objects."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine, UserDefinedType

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class _PostgresJson(UserDefinedType[str]):
    """PostgreSQL ``json``, passed through as text both ways: rows are spliced, never parsed.

    ``json`` and not ``jsonb``, which would reorder the worker's keys (DESIGN §2).
    """

    cache_ok = True

    def get_col_spec(self, **_kw: object) -> str:
        return "JSON"


#: A result row's JSON text: ``TEXT`` on SQLite, ``json`` (checked, kept verbatim) on PostgreSQL.
RowText: TypeEngine[str] = Text().with_variant(_PostgresJson(), "postgresql")


class Base(DeclarativeBase):
    metadata = metadata


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    #: Signs callback deliveries (``X-Runyard-Signature``); made on first use.
    webhook_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: Remaining credit as a decimal string; null: no credit is kept (runs are not refused).
    credit: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: Price of one CPU-second as a decimal string; null: runs cost nothing.
    price_per_cpu_second: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: Runs of this user that may be ``ready``/``running`` at once; null: no limit.
    max_concurrent_runs: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: SHA-256 of the key: keys are 256-bit random, so a fast hash is enough and lookup is exact.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The first characters, shown in listings so a person can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Worker(Base):
    __tablename__ = "workers"
    __table_args__ = (UniqueConstraint("user_id", "slug", name="uq_workers_user_slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    #: Listed in ``GET /store`` when true (``worker.json`` ``public``).
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The version a run gets when it asks for ``latest``; null for import-only workers.
    latest_version: Mapped[str | None] = mapped_column(String(64), nullable=True)


class WorkerVersion(Base):
    """One registered, immutable version of a worker package."""

    __tablename__ = "worker_versions"
    __table_args__ = (
        UniqueConstraint("worker_id", "version", name="uq_worker_versions_worker_version"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(64))
    #: Directory holding the package's files (a private copy made at registration).
    path: Mapped[str] = mapped_column(Text)
    #: ``input_schema.json`` and ``output_schema.json`` as registered (JSON text).
    input_schema: Mapped[str] = mapped_column(Text)
    output_schema: Mapped[str] = mapped_column(Text)
    readme: Mapped[str] = mapped_column(Text, default="")
    #: Python interpreter the version runs with (its virtualenv's, or the server's own).
    python: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_user_created", "user_id", "created_at"),
        Index("ix_runs_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(26), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(16))
    #: Rows stored so far; kept with every committed batch so a page never counts.
    results: Mapped[int] = mapped_column(Integer, default=0)
    #: JSON list of ``{"key", "label"}``: declared headers, then keys in order of first sight.
    columns: Mapped[str] = mapped_column(Text, default="[]")
    usage: Mapped[str] = mapped_column(String(32), default="0.0000")
    traffic: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[int] = mapped_column(BigInteger, default=0)
    finished_at: Mapped[int] = mapped_column(BigInteger, default=0)
    err_msg: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: ``parameters.custom`` after validation and defaults (JSON object text).
    input: Mapped[str] = mapped_column(Text, default="{}")
    #: ``parameters.system`` after validation and defaults (JSON object text).
    system: Mapped[str] = mapped_column(Text, default="{}")
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The executor that owns the running process, and its process group id: on restart an
    #: executor fails its own orphaned runs and kills what is left of their process groups.
    executor: Mapped[str | None] = mapped_column(String(128), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: CPU seconds (user + system) the run's process used; ``usage`` is this times the price.
    cpu_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    #: When the run was last handed to the Celery broker (``celery`` executor); a run still
    #: ``ready`` long after is handed over again, in case the message was lost.
    queued_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: The saved task that started the run, if one did.
    task_id: Mapped[int | None] = mapped_column(
        ForeignKey("tasks.id", ondelete="SET NULL"), nullable=True, index=True
    )


class Export(Base):
    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(26), unique=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    format: Mapped[str] = mapped_column(String(8))
    #: JSON list of the chosen keys, or null for "all headers".
    keys: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: JSON list of the keys the file has, fixed when the export was asked for.
    columns: Mapped[str] = mapped_column(Text)
    #: Options that change the bytes (CSV BOM and delimiter), as canonical JSON.
    options: Mapped[str] = mapped_column(Text, default="{}")
    #: The snapshot: rows ``seq < row_count`` are exported, whatever the run writes later.
    row_count: Mapped[int] = mapped_column(Integer)
    #: ``pending`` until the file is complete and in place, then ``ready`` (or ``failed``).
    status: Mapped[str] = mapped_column(String(16), default="pending")
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    truncated_cells: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    #: The latest expiry of any link handed out for this export: past it, the file is swept.
    links_expire_at: Mapped[int] = mapped_column(BigInteger, index=True)


class Task(Base):
    """A saved run configuration (spec §6), optionally on a schedule."""

    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(26), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text, default="")
    #: A registered version, or null for the newest at each run.
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The run input as given: ``{"parameters": {"custom": …, "system": …}}`` (JSON text).
    input: Mapped[str] = mapped_column(Text, default="{}")
    run_times: Mapped[int] = mapped_column(Integer, default=0)
    last_run_id: Mapped[str | None] = mapped_column(String(26), nullable=True)
    schedule_enabled: Mapped[int] = mapped_column(Integer, default=0)
    #: 1 daily, 2 weekly, 3 monthly, 4 once.
    schedule_type: Mapped[int | None] = mapped_column(Integer, nullable=True)
    schedule_time: Mapped[str | None] = mapped_column(String(5), nullable=True)
    schedule_weekday: Mapped[int | None] = mapped_column(Integer, nullable=True)
    schedule_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    schedule_once_date: Mapped[str | None] = mapped_column(String(10), nullable=True)
    #: When the schedule fires next (unix seconds); null when it will not. Claimed by a
    #: compare-and-set on this value, so each occurrence fires once however many servers run.
    next_fire_at: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class Node(Base):
    """An execution node (``runyard worker``) and when it last said it was alive.

    A node silent for longer than the lease is dead: its runs are failed by whoever notices.
    """

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    #: Runs it executes at once.
    slots: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[float] = mapped_column(Float)
    heartbeat_at: Mapped[float] = mapped_column(Float, index=True)


class CallbackDelivery(Base):
    """One callback POST to make, kept until it is delivered or out of attempts."""

    __tablename__ = "callback_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    #: ``X-Runyard-Delivery``: the same on every retry of this delivery.
    delivery_id: Mapped[str] = mapped_column(String(26), unique=True)
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    #: ``pending`` until delivered (``delivered``) or out of attempts (``failed``).
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float, index=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


#: Run log lines, numbered densely from 0 within their run; the newest 1,000 are one range read.
run_logs = Table(
    "run_logs",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    #: 1 debug, 2 info, 3 warn, 4 error (spec §3).
    Column("level", Integer, nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("content", Text, nullable=False),
)

#: Result rows, stored as the JSON text received; ``seq`` is dense from 0 within a run, so a page
#: is a primary-key range and never an ``OFFSET`` scan.
result_rows = Table(
    "result_rows",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("data", RowText, nullable=False),
)
