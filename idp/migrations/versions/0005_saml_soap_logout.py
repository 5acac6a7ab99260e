"""one back-channel logout queue for every protocol (SAML SOAP logout joins OIDC)

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-29 20:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

import idp.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COPIED = (
    "login_session_id, uri, attempts, created_at, next_attempt_at, give_up_at, "
    "delivered_at, failed_at, last_error"
)


def _create(name: str, rp_column: sa.Column[str], *extra: sa.Column[str]) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        *extra,
        rp_column,
        sa.Column("login_session_id", sa.Integer(), nullable=False),
        sa.Column("uri", sa.String(length=2000), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", idp.db.UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", idp.db.UTCDateTime(), nullable=True),
        sa.Column("give_up_at", idp.db.UTCDateTime(), nullable=False),
        sa.Column("delivered_at", idp.db.UTCDateTime(), nullable=True),
        sa.Column("failed_at", idp.db.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["login_session_id"],
            ["login_session.id"],
            name=op.f(f"fk_{name}_login_session_id_login_session"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
    )
    indexed = (rp_column.name, "login_session_id", "next_attempt_at", "delivered_at", "failed_at")
    for column in indexed:
        op.create_index(op.f(f"ix_{name}_{column}"), name, [column])


def upgrade() -> None:
    # A new table rather than a rename: every constraint and index gets the name the models'
    # naming convention gives it, on SQLite and PostgreSQL alike.
    _create(
        "logout_delivery",
        sa.Column("rp", sa.String(length=1024), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
    )
    op.execute(
        f"INSERT INTO logout_delivery (protocol, rp, {COPIED}) "  # noqa: S608 (constants)
        f"SELECT 'oidc', client_id, {COPIED} FROM oidc_logout_delivery ORDER BY id"
    )
    op.drop_table("oidc_logout_delivery")


def downgrade() -> None:
    _create("oidc_logout_delivery", sa.Column("client_id", sa.String(length=128), nullable=False))
    op.execute(
        f"INSERT INTO oidc_logout_delivery (client_id, {COPIED}) "  # noqa: S608 (constants)
        f"SELECT rp, {COPIED} FROM logout_delivery WHERE protocol = 'oidc' ORDER BY id"
    )
    op.drop_table("logout_delivery")
