"""Persistence: metadata through SQLAlchemy, result rows through a ``RowStore``, files on disk."""

from runyard.storage.database import Database, make_engine, migrate
from runyard.storage.files import FileStore, LocalFileStore
from runyard.storage.models import ApiKey, Export, Run, User, Worker, result_rows
from runyard.storage.rawquery import RawQuery
from runyard.storage.rowstore import RowStore, SqlRowStore

__all__ = [
    "ApiKey",
    "Database",
    "Export",
    "FileStore",
    "LocalFileStore",
    "RawQuery",
    "RowStore",
    "Run",
    "SqlRowStore",
    "User",
    "Worker",
    "make_engine",
    "migrate",
    "result_rows",
]
