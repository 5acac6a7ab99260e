"""service accounts (the admin API's machine clients)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Clients registered before this revision are no service accounts.
    with op.batch_alter_table("oauth_client") as batch:
        batch.add_column(
            sa.Column("is_service_account", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("oauth_client") as batch:
        batch.alter_column("is_service_account", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("oauth_client") as batch:
        batch.drop_column("is_service_account")
