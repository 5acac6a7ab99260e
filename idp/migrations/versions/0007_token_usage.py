"""token usage records, security notices, password_changed_at

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 21:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import idp.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_kind", sa.String(length=16), nullable=False),
        sa.Column("token_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("network", sa.String(length=64), nullable=False),
        sa.Column("hour", idp.db.UTCDateTime(), nullable=False),
        sa.Column("resource", sa.String(length=255), nullable=False),
        sa.Column("introspected", sa.Boolean(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen", idp.db.UTCDateTime(), nullable=False),
        sa.Column("last_seen", idp.db.UTCDateTime(), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=False),
        sa.Column("user_agent", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_token_usage_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_token_usage")),
        sa.UniqueConstraint(
            "token_kind",
            "token_id",
            "network",
            "hour",
            "resource",
            name=op.f("uq_token_usage_token_kind"),
        ),
    )
    op.create_index(op.f("ix_token_usage_hour"), "token_usage", ["hour"])
    op.create_index(op.f("ix_token_usage_user_id"), "token_usage", ["user_id"])
    op.create_table(
        "security_notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", idp.db.UTCDateTime(), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("token_kind", sa.String(length=16), nullable=False),
        sa.Column("token_id", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=True),
        sa.Column("network", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("seen_at", idp.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_security_notice_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_notice")),
    )
    op.create_index(op.f("ix_security_notice_user_id"), "security_notice", ["user_id"])
    with op.batch_alter_table("user_account") as batch:
        batch.add_column(sa.Column("password_changed_at", idp.db.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user_account") as batch:
        batch.drop_column("password_changed_at")
    op.drop_table("security_notice")
    op.drop_table("token_usage")
