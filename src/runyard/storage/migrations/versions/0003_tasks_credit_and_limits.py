"""tasks, credit and limits

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 23:09:39.568675
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=26), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("run_times", sa.Integer(), nullable=False),
        sa.Column("last_run_id", sa.String(length=26), nullable=True),
        sa.Column("schedule_enabled", sa.Integer(), nullable=False),
        sa.Column("schedule_type", sa.Integer(), nullable=True),
        sa.Column("schedule_time", sa.String(length=5), nullable=True),
        sa.Column("schedule_weekday", sa.Integer(), nullable=True),
        sa.Column("schedule_day", sa.Integer(), nullable=True),
        sa.Column("schedule_once_date", sa.String(length=10), nullable=True),
        sa.Column("next_fire_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tasks_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.id"],
            name=op.f("fk_tasks_worker_id_workers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("slug", name=op.f("uq_tasks_slug")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tasks_next_fire_at"), ["next_fire_at"], unique=False)
        batch_op.create_index("ix_tasks_user_created", ["user_id", "created_at"], unique=False)

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cpu_seconds", sa.Float(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("task_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_runs_task_id"), ["task_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_runs_task_id_tasks"), "tasks", ["task_id"], ["id"], ondelete="SET NULL"
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credit", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("price_per_cpu_second", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("max_concurrent_runs", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("max_concurrent_runs")
        batch_op.drop_column("price_per_cpu_second")
        batch_op.drop_column("credit")

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_runs_task_id_tasks"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_runs_task_id"))
        batch_op.drop_column("task_id")
        batch_op.drop_column("cpu_seconds")

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_user_created")
        batch_op.drop_index(batch_op.f("ix_tasks_next_fire_at"))

    op.drop_table("tasks")
