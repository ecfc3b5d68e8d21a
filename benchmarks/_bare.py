"""The baseline: a bare Starlette endpoint serving the same page from the same database.

No auth, no envelope, no framework routing beyond Starlette's: the floor a result page could
cost on this machine. The database is a SQLite file's path, or a ``postgresql://`` URL (the
``--postgres`` side), read with the same driver Runyard uses and ``json`` handed over as text.

    python _bare.py DB RUN_ID PORT
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DB, RUN_ID, PORT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
POSTGRES = DB.startswith(("postgresql://", "postgres://"))
_local = threading.local()
SQL = "SELECT data FROM result_rows WHERE run_id=? AND seq>=? AND seq<? ORDER BY seq"
if POSTGRES:
    SQL = SQL.replace("?", "%s")


def conn() -> Any:
    c = getattr(_local, "conn", None)
    if c is None:
        if POSTGRES:
            from _postgres import connect

            c = _local.conn = connect(DB)
        else:
            c = _local.conn = sqlite3.connect(DB, check_same_thread=False)
    return c


async def page(request: Request) -> Response:
    offset = int(request.query_params.get("offset", 0))
    limit = min(int(request.query_params.get("limit", 20)), 100)
    rows = [r[0] for r in conn().execute(SQL, (RUN_ID, offset, offset + limit))]
    return Response(('{"list":[' + ",".join(rows) + "]}").encode(), media_type="application/json")


app = Starlette(routes=[Route("/page", page)])
uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning", access_log=False)
