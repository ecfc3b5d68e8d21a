"""scale-out: execution nodes, queued runs, 64-bit counters, json rows on PostgreSQL

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 09:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: Integer columns that outgrow 32 bits: bytes, and unix seconds past 2038.
_WIDENED = {
    "runs": ("traffic", "started_at", "finished_at"),
    "exports": ("size", "links_expire_at"),
}


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("heartbeat_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_nodes")),
    )
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nodes_heartbeat_at"), ["heartbeat_at"], unique=False)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queued_at", sa.Float(), nullable=True))

    if op.get_bind().dialect.name != "postgresql":
        # SQLite's INTEGER already holds 64 bits and its TEXT is what json is there; changing
        # a declared type would rebuild the table, and dropping ``runs`` under foreign keys
        # would cascade into every result row.
        return
    for table, columns in _WIDENED.items():
        for column in columns:
            op.alter_column(table, column, type_=sa.BigInteger())
    # ``json``, not ``jsonb``: checked on the way in, and kept byte for byte (key order).
    op.execute("ALTER TABLE result_rows ALTER COLUMN data TYPE json USING data::json")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE result_rows ALTER COLUMN data TYPE text")
        for table, columns in _WIDENED.items():
            for column in columns:
                op.alter_column(table, column, type_=sa.Integer())
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("queued_at")
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nodes_heartbeat_at"))
    op.drop_table("nodes")
