"""Sample data worker: pushes ``count`` deterministic synthetic product records."""

from __future__ import annotations

import sys
import time
from typing import Any

from records import FIELDS, iter_chunks

from runyard import sdk

MAX_COUNT = 10_000_000
# CoreClaw header formats; number columns have none of their own, so they show as text.
_HEADER_FORMATS = {"integer": "integer", "boolean": "boolean", "array": "array", "object": "object"}


def _int_input(params: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = params.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{key} must be an integer from {low} to {high}, got {value!r}")
    return value


def main() -> int:
    params = sdk.input()
    try:
        count = _int_input(params, "count", 1000, 0, MAX_COUNT)
        seed = _int_input(params, "seed", 1, 0, 2**63 - 1)
        chunk_size = _int_input(params, "chunk_size", 1000, 1, 100_000)
        delay_ms = _int_input(params, "delay_ms", 0, 0, 60_000)
    except ValueError as exc:
        sdk.log(f"invalid input: {exc}", level="error")
        return 2
    sdk.set_headers(
        [
            {"key": name, "label": name, "format": _HEADER_FORMATS.get(kind, "text")}
            for name, kind, _ in FIELDS
        ]
    )
    sdk.log(f"pushing {count} records (seed {seed}, chunks of {chunk_size})", level="info")
    started = time.monotonic()
    pushed = 0
    next_report = max(count // 10, chunk_size)
    for chunk in iter_chunks(count, seed, chunk_size):
        sdk.push_many(chunk)
        pushed += len(chunk)
        if pushed >= next_report and pushed < count:
            next_report += max(count // 10, chunk_size)
            rate = pushed / max(time.monotonic() - started, 1e-9)
            sdk.log(f"{pushed}/{count} records pushed ({rate:,.0f}/s)", level="info")
        if delay_ms and pushed < count:
            time.sleep(delay_ms / 1000)
    elapsed = time.monotonic() - started
    sdk.log(f"done: {pushed} records in {elapsed:.1f}s", level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
