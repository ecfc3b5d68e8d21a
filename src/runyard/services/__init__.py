"""Use cases, knowing nothing of HTTP: accounts, runs, result pages, imports and exports."""

from runyard.services.accounts import Accounts, KeyInfo
from runyard.services.container import Services
from runyard.services.errors import (
    ConcurrencyLimit,
    ExportFailed,
    InsufficientBalance,
    InvalidInput,
    InvalidToken,
    NotFound,
    ServiceError,
    Unauthenticated,
    UnstorableText,
    VersionNotFound,
    WrongState,
)
from runyard.services.exports import DownloadFile, Exports
from runyard.services.paging import MAX_LIMIT, Window
from runyard.services.results import ResultPage, Results
from runyard.services.runs import RunRecord, Runs

__all__ = [
    "MAX_LIMIT",
    "Accounts",
    "ConcurrencyLimit",
    "DownloadFile",
    "ExportFailed",
    "Exports",
    "InsufficientBalance",
    "InvalidInput",
    "InvalidToken",
    "KeyInfo",
    "NotFound",
    "ResultPage",
    "Results",
    "RunRecord",
    "Runs",
    "ServiceError",
    "Services",
    "Unauthenticated",
    "UnstorableText",
    "VersionNotFound",
    "Window",
    "WrongState",
]
