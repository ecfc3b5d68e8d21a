"""The baseline: a bare Starlette endpoint serving the same page from the same SQLite file.

No auth, no envelope, no framework routing beyond Starlette's: the floor a result page could
cost on this machine.
"""

from __future__ import annotations

import sqlite3
import sys
import threading

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DB, RUN_ID, PORT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
_local = threading.local()
SQL = "SELECT data FROM result_rows WHERE run_id=? AND seq>=? AND seq<? ORDER BY seq"


def conn() -> sqlite3.Connection:
    c = getattr(_local, "conn", None)
    if c is None:
        c = _local.conn = sqlite3.connect(DB, check_same_thread=False)
    return c


async def page(request: Request) -> Response:
    offset = int(request.query_params.get("offset", 0))
    limit = min(int(request.query_params.get("limit", 20)), 100)
    rows = [r[0] for r in conn().execute(SQL, (RUN_ID, offset, offset + limit))]
    return Response(('{"list":[' + ",".join(rows) + "]}").encode(), media_type="application/json")


app = Starlette(routes=[Route("/page", page)])
uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning", access_log=False)
