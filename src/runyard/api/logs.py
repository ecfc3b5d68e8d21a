"""Logging that never writes an API key: ``token=`` (and link ``signature=``) values are redacted.

The access log is written by ``request_id.RequestIdMiddleware`` (logger ``runyard.access``);
the filter below guards every other log line too.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any
from urllib.parse import unquote_plus

from uvicorn.config import LOGGING_CONFIG

SECRET_PARAMS = frozenset({"token", "signature"})
_TOKEN = re.compile(r"(?i)([?&](?:token|signature)=)[^&\s]*")


def redact_query(query: str) -> str:
    """``query`` with the values of ``token`` and ``signature`` replaced, however the names are
    spelled (any case, percent-encoded) — the way the server itself will decode them."""
    parts = query.split("&")
    for i, part in enumerate(parts):
        name, sep, _ = part.partition("=")
        if sep and unquote_plus(name).lower() in SECRET_PARAMS:
            parts[i] = f"{name}=[redacted]"
    return "&".join(parts)


def redact(text: str) -> str:
    """A last guard for free text, such as a URL inside a message."""
    return _TOKEN.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        record.msg = redact(str(record.msg))
        return True


def log_config() -> dict[str, Any]:
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": RedactTokens}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    config["loggers"]["runyard"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    config["loggers"]["runyard.access"] = {
        "handlers": ["access_plain"],
        "level": "INFO",
        "propagate": False,
    }
    config["formatters"]["access_plain"] = {"format": "%(asctime)s %(message)s"}
    config["handlers"]["access_plain"] = {
        "formatter": "access_plain",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
        "filters": ["redact"],
    }
    return config
