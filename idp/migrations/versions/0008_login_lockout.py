"""login lockout failure counters

Revision ID: 0008
Revises: 0006
Create Date: 2026-11-29 21:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import idp.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "failure_counter",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("window_start", idp.db.UTCDateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("locked_until", idp.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key_hash", name=op.f("pk_failure_counter")),
    )
    op.create_index(
        op.f("ix_failure_counter_window_start"), "failure_counter", ["window_start"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_failure_counter_window_start"), table_name="failure_counter")
    op.drop_table("failure_counter")
