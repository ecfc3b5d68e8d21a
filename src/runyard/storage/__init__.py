"""Persistence: metadata through SQLAlchemy, result rows through a ``RowStore``, files on disk."""

from runyard.storage.database import Database, make_engine, migrate
from runyard.storage.files import FileStore, LocalFileStore
from runyard.storage.models import (
    ApiKey,
    CallbackDelivery,
    Export,
    Node,
    Run,
    Task,
    User,
    Worker,
    WorkerVersion,
    result_rows,
    run_logs,
)
from runyard.storage.rawquery import RawQuery
from runyard.storage.rowstore import PostgresRowStore, RowStore, SqlRowStore, row_store

__all__ = [
    "ApiKey",
    "CallbackDelivery",
    "Database",
    "Export",
    "FileStore",
    "LocalFileStore",
    "Node",
    "PostgresRowStore",
    "RawQuery",
    "RowStore",
    "Run",
    "SqlRowStore",
    "Task",
    "User",
    "Worker",
    "WorkerVersion",
    "make_engine",
    "migrate",
    "result_rows",
    "row_store",
    "run_logs",
]
