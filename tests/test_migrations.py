"""Alembic migrations: the same schema, in effect, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import BigInteger, Engine, Integer, inspect

from runyard.storage import Database, row_store
from runyard.storage.database import MIGRATIONS_DIR
from runyard.storage.models import metadata
from tests.conftest import POSTGRES_PROBLEM, Databases

pytestmark = pytest.mark.both_databases


@pytest.fixture
def db(tmp_path: Path, database_url: str | None) -> Iterator[Database]:
    database = Database(database_url or f"sqlite:///{tmp_path}/db.sqlite")
    yield database
    database.dispose()


def _upgrade(engine: Engine, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _same_on_sqlite(diff: Any) -> bool:
    # SQLite stores every INTEGER in up to 64 bits: a declared BIGINT changes nothing there,
    # and rebuilding ``runs`` to say so would cascade into the result rows.
    return (
        isinstance(diff, list)
        and diff[0][0] == "modify_type"
        and isinstance(diff[0][5], Integer)
        and isinstance(diff[0][6], BigInteger)
    )


def test_migrations_build_exactly_the_models(db: Database) -> None:
    db.migrate()
    with db.engine.connect() as conn:
        diffs = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    if db.dialect == "sqlite":
        diffs = [d for d in diffs if not _same_on_sqlite(d)]
    assert diffs == []


def test_upgrading_keeps_every_row_byte_for_byte(db: Database) -> None:
    """Rows written before the PostgreSQL ``json`` column came stay exactly as sent."""
    _upgrade(db.engine, "0003")
    texts = ['{"b": 1,  "a": [2, 3]}', '{"ü":"日本","z":null}', '{"n":1e400}']
    with db.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO users (id, name, created_at) VALUES (1, 'u', 0)")
        conn.exec_driver_sql(
            "INSERT INTO workers (id, user_id, slug, title, description, created_at, public)"
            " VALUES (1, 1, 'w', 'w', '', 0, false)"
        )
        conn.exec_driver_sql(
            "INSERT INTO runs (id, slug, user_id, worker_id, version, status, origin, results,"
            " columns, usage, traffic, created_at, started_at, finished_at, input, system,"
            " cpu_seconds) VALUES (1, 'r', 1, 1, '1', 'succeeded', 'api', 3, '[]', '0', 0,"
            f" {time.time()}, 0, 0, '{{}}', '{{}}', 0)"
        )
        for seq, text in enumerate(texts):
            conn.exec_driver_sql(
                "INSERT INTO result_rows (run_id, seq, data) VALUES (1, %s, %s)"
                if db.dialect == "postgresql"
                else "INSERT INTO result_rows (run_id, seq, data) VALUES (1, ?, ?)",
                (seq, text),
            )
    db.migrate()
    assert row_store(db.engine).read(1, 0, 10) == texts


def _shape(engine: Engine) -> dict[str, Any]:
    insp = inspect(engine)
    shape: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        shape[table] = {
            "columns": [(c["name"], c["nullable"]) for c in insp.get_columns(table)],
            "primary key": insp.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(table)
                # PostgreSQL also lists the index behind each unique constraint.
                if not i.get("duplicates_constraint")
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(table)
            ),
            "foreign keys": sorted(
                (
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    tuple(f["referred_columns"]),
                    (f.get("options") or {}).get("ondelete"),
                )
                for f in insp.get_foreign_keys(table)
            ),
        }
    return shape


@pytest.mark.skipif(POSTGRES_PROBLEM is not None, reason=str(POSTGRES_PROBLEM))
def test_sqlite_and_postgresql_get_the_same_tables_keys_and_indexes(
    tmp_path: Path, databases: Databases
) -> None:
    lite = Database(f"sqlite:///{tmp_path}/db.sqlite")
    url = databases.url("postgresql")
    assert url is not None
    pg = Database(url)
    try:
        lite.migrate()
        pg.migrate()
        assert _shape(lite.engine) == _shape(pg.engine)
    finally:
        lite.dispose()
        pg.dispose()
