"""Logging that never writes an API key: ``token=`` (and link ``signature=``) values are redacted.

The access log is written by ``request_id.RequestIdMiddleware`` (logger ``runyard.access``);
the filter below guards every other log line too.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any
from urllib.parse import quote, unquote_plus

from uvicorn.config import LOGGING_CONFIG

SECRET_PARAMS = frozenset({"token", "signature"})
#: A secret parameter inside free text or a decoded value: the name (not the tail of a longer
#: one, but maybe right after a percent-escape such as ``%3F``) and its ``=``, however many
#: times percent-encoded; the value runs to the next ``&`` (encoded or not), space or quote.
_SECRET_IN_TEXT = re.compile(
    r"(?i)(?:(?<![a-z0-9])|(?<=%[0-9a-f]{2})|(?<=%25[0-9a-f]{2})|(?<=%2525[0-9a-f]{2}))"
    r"((?:token|signature)(?:=|%(?:25)*3d))(?:(?!%(?:25)*26)[^&\s\"'<>])*"
)
#: An ``=``, however many times percent-encoded.
_HAS_EQUALS = re.compile(r"=|%(?:25)*3[dD]")
#: Values are decoded at most this often looking for a secret: an address inside an address
#: inside an address is already more than any page of ours makes.
_MAX_DECODES = 4


def _nested_secret(value: str) -> str | None:
    """``value`` decoded, with the secrets it carries redacted, if it carries any — e.g. the
    console's ``next=%2Fruns%3Ftoken%3D…`` on its way to sign-in; else None."""
    text = value
    for _ in range(_MAX_DECODES):
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    redacted, found = _SECRET_IN_TEXT.subn(r"\1[redacted]", text)
    return quote(redacted, safe="/?=&[]:,;@+") if found else None


def redact_query(query: str) -> str:
    """``query`` with the values of ``token`` and ``signature`` replaced, however the names are
    spelled (any case, percent-encoded) — the way the server itself will decode them — and
    wherever another parameter's value carries one (a sign-in redirect's ``next``)."""
    parts = query.split("&")
    for i, part in enumerate(parts):
        name, sep, value = part.partition("=")
        if not sep:
            continue
        if unquote_plus(name).lower() in SECRET_PARAMS:
            parts[i] = f"{name}=[redacted]"
        elif _HAS_EQUALS.search(value):  # else it holds no parameter at all: the usual case
            nested = _nested_secret(value)
            if nested is not None:
                parts[i] = f"{name}={nested}"
    return "&".join(parts)


def redact(text: str) -> str:
    """A last guard for free text, such as a URL inside a message."""
    return _SECRET_IN_TEXT.sub(r"\1[redacted]", text)


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
