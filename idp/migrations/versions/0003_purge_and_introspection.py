"""purge indexes, resource servers, self-registered clients

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 19:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Clients registered before this revision keep their behaviour: not resource servers, and
    # treated as operator-registered (nothing recorded which ones came through RFC 7591).
    with op.batch_alter_table("oauth_client") as batch:
        batch.add_column(
            sa.Column("is_resource_server", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("is_self_registered", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("oauth_client") as batch:
        batch.alter_column("is_resource_server", server_default=None)
        batch.alter_column("is_self_registered", server_default=None)
    # The nonce-reuse check looks codes up by client and nonce; client_id alone is its prefix.
    op.drop_index("ix_oauth_authorization_code_client_id", table_name="oauth_authorization_code")
    op.create_index(
        "ix_oauth_authorization_code_client_id_nonce",
        "oauth_authorization_code",
        ["client_id", "nonce"],
    )
    # What the periodic purge looks rows up by.
    op.create_index(
        "ix_oauth_authorization_code_expires_at", "oauth_authorization_code", ["expires_at"]
    )
    op.create_index("ix_oauth_token_access_expires_at", "oauth_token", ["access_expires_at"])
    op.create_index("ix_login_session_revoked_at", "login_session", ["revoked_at"])
    op.create_index(
        "ix_oidc_logout_delivery_delivered_at", "oidc_logout_delivery", ["delivered_at"]
    )
    op.create_index("ix_oidc_logout_delivery_failed_at", "oidc_logout_delivery", ["failed_at"])


def downgrade() -> None:
    op.drop_index("ix_oidc_logout_delivery_failed_at", table_name="oidc_logout_delivery")
    op.drop_index("ix_oidc_logout_delivery_delivered_at", table_name="oidc_logout_delivery")
    op.drop_index("ix_login_session_revoked_at", table_name="login_session")
    op.drop_index("ix_oauth_token_access_expires_at", table_name="oauth_token")
    op.drop_index("ix_oauth_authorization_code_expires_at", table_name="oauth_authorization_code")
    op.drop_index(
        "ix_oauth_authorization_code_client_id_nonce", table_name="oauth_authorization_code"
    )
    op.create_index(
        "ix_oauth_authorization_code_client_id", "oauth_authorization_code", ["client_id"]
    )
    with op.batch_alter_table("oauth_client") as batch:
        batch.drop_column("is_self_registered")
        batch.drop_column("is_resource_server")
