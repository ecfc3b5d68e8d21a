"""Run one export in this process and report its time and this process's peak RSS as JSON."""

from __future__ import annotations

import resource
import sys
import time

import orjson

from runyard.services import Services
from runyard.settings import Settings

data_dir, user, run, fmt = sys.argv[1:5]
svc = Services(Settings(data_dir=data_dir, export_threads=1))
uid = svc.accounts.user_id(user)
started = time.perf_counter()
url = svc.exports.request(uid, run, fmt=fmt, filter_keys=None, base_url="http://bench")
name = url.split("/api/v2/files/")[1].split("/")[0]
export = svc.exports.get(name)
svc.exports.wait(export.id)
seconds = time.perf_counter() - started
export = svc.exports.get(name)
print(
    orjson.dumps(
        {
            "seconds": seconds,
            "rows": export.row_count,
            "bytes": export.size,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    ).decode()
)
svc.close()
