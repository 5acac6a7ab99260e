"""the personal access token policy an admin sets in the console

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 22:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import idp.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pat_enabled", sa.Boolean(), nullable=False),
        sa.Column("pat_max_lifetime", sa.Integer(), nullable=False),
        sa.Column("pat_allow_no_expiry", sa.Boolean(), nullable=False),
        sa.Column("pat_allowed_scopes", sa.String(length=255), nullable=False),
        sa.Column("updated_at", idp.db.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["updated_by"],
            ["user_account.id"],
            name=op.f("fk_token_policy_updated_by_user_account"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_token_policy")),
    )


def downgrade() -> None:
    op.drop_table("token_policy")
