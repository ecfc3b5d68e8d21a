"""Baseline: DuckDB's COPY writing the same rows (from the same JSONL) to CSV."""

from __future__ import annotations

import resource
import sys
import time

import duckdb
import orjson

src, dest = sys.argv[1:3]
con = duckdb.connect()
started = time.perf_counter()
con.execute(
    f"COPY (SELECT * FROM read_json('{src}', format='newline_delimited')) "
    f"TO '{dest}' (HEADER, DELIMITER ',')"
)
print(
    orjson.dumps(
        {
            "seconds": time.perf_counter() - started,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    ).decode()
)
