"""Web scraper worker: Runyard glue around crawler.py (which knows nothing of Runyard)."""

from __future__ import annotations

import asyncio
import sys

from crawler import config_from_input, crawl

from runyard import sdk


def _log(level: str, msg: str) -> None:
    sdk.log(msg, level=level)


def main() -> int:
    try:
        config = config_from_input(sdk.input())
    except ValueError as exc:
        sdk.log(f"invalid input: {exc}", level="error")
        return 2
    sdk.set_headers(
        [
            {"key": "url", "label": "URL", "format": "text"},
            {"key": "depth", "label": "Depth", "format": "integer"},
            {"key": "status", "label": "HTTP status", "format": "integer"},
        ]
        + [{"key": name, "label": name, "format": "text"} for name in config.field_names]
    )
    sdk.log(
        f"crawling {len(config.start_urls)} start URL(s): max_pages={config.max_pages}, "
        f"max_depth={config.max_depth}, concurrency={config.concurrency}, "
        f"robots.txt {'respected' if config.respect_robots_txt else 'ignored'}",
        level="info",
    )
    stats = asyncio.run(crawl(config, emit=sdk.push, log=_log))
    if stats.rows == 0:
        # Nothing answered at all: fail the run so it does not look like an empty success.
        sdk.log("no page could be fetched", level="error")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
