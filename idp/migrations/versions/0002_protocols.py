"""oidc saml logout

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 02:25:33.337932
"""

import sqlalchemy as sa
from alembic import op

import idp.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_client",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("client_secret_hash", sa.String(length=64), nullable=True),
        sa.Column("client_name", sa.String(length=200), nullable=False),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("post_logout_redirect_uris", sa.JSON(), nullable=False),
        sa.Column("backchannel_logout_uri", sa.String(length=2000), nullable=True),
        sa.Column("frontchannel_logout_uri", sa.String(length=2000), nullable=True),
        sa.Column("token_endpoint_auth_method", sa.String(length=40), nullable=False),
        sa.Column("grant_types", sa.JSON(), nullable=False),
        sa.Column("response_types", sa.JSON(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("jwks", sa.JSON(), nullable=True),
        sa.Column("jwks_uri", sa.String(length=2000), nullable=True),
        sa.Column("id_token_signed_response_alg", sa.String(length=10), nullable=False),
        sa.Column("subject_type", sa.String(length=10), nullable=False),
        sa.Column("is_trusted", sa.Boolean(), nullable=False),
        sa.Column("is_disabled", sa.Boolean(), nullable=False),
        sa.Column("registration_access_token_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", idp.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_client")),
        sa.UniqueConstraint("client_id", name=op.f("uq_oauth_client_client_id")),
    )
    op.create_table(
        "replay_entry",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("expires_at", idp.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_replay_entry")),
    )
    with op.batch_alter_table("replay_entry", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_replay_entry_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "saml_service_provider",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.String(length=1024), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("metadata_xml", sa.Text(), nullable=False),
        sa.Column("acs_endpoints", sa.JSON(), nullable=False),
        sa.Column("slo_endpoints", sa.JSON(), nullable=False),
        sa.Column("signing_certificates", sa.JSON(), nullable=False),
        sa.Column("encryption_certificates", sa.JSON(), nullable=False),
        sa.Column("authn_requests_signed", sa.Boolean(), nullable=False),
        sa.Column("want_assertions_signed", sa.Boolean(), nullable=False),
        sa.Column("name_id_formats", sa.JSON(), nullable=False),
        sa.Column("name_id_format", sa.String(length=200), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=True),
        sa.Column("sign_response", sa.Boolean(), nullable=False),
        sa.Column("sign_assertion", sa.Boolean(), nullable=False),
        sa.Column("encrypt_assertion", sa.Boolean(), nullable=False),
        sa.Column("relay_states", sa.JSON(), nullable=False),
        sa.Column("is_disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", idp.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", idp.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saml_service_provider")),
        sa.UniqueConstraint("entity_id", name=op.f("uq_saml_service_provider_entity_id")),
    )
    op.create_table(
        "user_group",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_group")),
        sa.UniqueConstraint("name", name=op.f("uq_user_group_name")),
    )
    op.create_table(
        "oauth_consent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("granted_at", idp.db.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", idp.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_oauth_consent_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_consent")),
        sa.UniqueConstraint("user_id", "client_id", name=op.f("uq_oauth_consent_user_id")),
    )
    with op.batch_alter_table("oauth_consent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oauth_consent_client_id"), ["client_id"], unique=False)

    op.create_table(
        "saml_persistent_id",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("sp_entity_id", sa.String(length=1024), nullable=False),
        sa.Column("name_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", idp.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_saml_persistent_id_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saml_persistent_id")),
        sa.UniqueConstraint(
            "sp_entity_id", "name_id", name=op.f("uq_saml_persistent_id_sp_entity_id")
        ),
        sa.UniqueConstraint("user_id", "sp_entity_id", name=op.f("uq_saml_persistent_id_user_id")),
    )
    op.create_table(
        "user_group_member",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["user_group.id"],
            name=op.f("fk_user_group_member_group_id_user_group"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_user_group_member_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "group_id", name=op.f("pk_user_group_member")),
    )
    op.create_table(
        "oauth_authorization_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("login_session_id", sa.Integer(), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2000), nullable=False),
        sa.Column("response_type", sa.String(length=40), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("nonce", sa.String(length=512), nullable=True),
        sa.Column("code_challenge", sa.String(length=128), nullable=True),
        sa.Column("code_challenge_method", sa.String(length=10), nullable=True),
        sa.Column("claims", sa.JSON(), nullable=True),
        sa.Column("acr", sa.String(length=200), nullable=True),
        sa.Column("created_at", idp.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", idp.db.UTCDateTime(), nullable=False),
        sa.Column("used_at", idp.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["login_session_id"],
            ["login_session.id"],
            name=op.f("fk_oauth_authorization_code_login_session_id_login_session"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_oauth_authorization_code_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_authorization_code")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_oauth_authorization_code_code_hash")),
    )
    with op.batch_alter_table("oauth_authorization_code", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oauth_authorization_code_client_id"), ["client_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_oauth_authorization_code_login_session_id"),
            ["login_session_id"],
            unique=False,
        )

    op.create_table(
        "oidc_logout_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
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
            name=op.f("fk_oidc_logout_delivery_login_session_id_login_session"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oidc_logout_delivery")),
    )
    with op.batch_alter_table("oidc_logout_delivery", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oidc_logout_delivery_client_id"), ["client_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_oidc_logout_delivery_login_session_id"),
            ["login_session_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_oidc_logout_delivery_next_attempt_at"), ["next_attempt_at"], unique=False
        )

    op.create_table(
        "saml_session_index",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sp_entity_id", sa.String(length=1024), nullable=False),
        sa.Column("login_session_id", sa.Integer(), nullable=False),
        sa.Column("name_id", sa.String(length=512), nullable=False),
        sa.Column("name_id_format", sa.String(length=200), nullable=False),
        sa.Column("session_index", sa.String(length=64), nullable=False),
        sa.Column("created_at", idp.db.UTCDateTime(), nullable=False),
        sa.Column("last_issued_at", idp.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["login_session_id"],
            ["login_session.id"],
            name=op.f("fk_saml_session_index_login_session_id_login_session"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sp_entity_id"],
            ["saml_service_provider.entity_id"],
            name=op.f("fk_saml_session_index_sp_entity_id_saml_service_provider"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saml_session_index")),
        sa.UniqueConstraint(
            "login_session_id", "sp_entity_id", name=op.f("uq_saml_session_index_login_session_id")
        ),
        sa.UniqueConstraint("session_index", name=op.f("uq_saml_session_index_session_index")),
    )
    with op.batch_alter_table("saml_session_index", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_saml_session_index_sp_entity_id"), ["sp_entity_id"], unique=False
        )

    op.create_table(
        "session_participant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login_session_id", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("rp", sa.String(length=1024), nullable=False),
        sa.Column("joined_at", idp.db.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", idp.db.UTCDateTime(), nullable=False),
        sa.Column("logged_out_at", idp.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["login_session_id"],
            ["login_session.id"],
            name=op.f("fk_session_participant_login_session_id_login_session"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_participant")),
        sa.UniqueConstraint(
            "login_session_id",
            "protocol",
            "rp",
            name=op.f("uq_session_participant_login_session_id"),
        ),
    )
    with op.batch_alter_table("session_participant", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_session_participant_login_session_id"),
            ["login_session_id"],
            unique=False,
        )

    op.create_table(
        "oauth_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("refresh_token_hash", sa.String(length=64), nullable=True),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("login_session_id", sa.Integer(), nullable=True),
        sa.Column("authorization_code_id", sa.Integer(), nullable=True),
        sa.Column("family_id", sa.String(length=64), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("claims", sa.JSON(), nullable=True),
        sa.Column("issued_at", idp.db.UTCDateTime(), nullable=False),
        sa.Column("access_expires_at", idp.db.UTCDateTime(), nullable=False),
        sa.Column("refresh_expires_at", idp.db.UTCDateTime(), nullable=True),
        sa.Column("rotated_at", idp.db.UTCDateTime(), nullable=True),
        sa.Column("revoked_at", idp.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["authorization_code_id"],
            ["oauth_authorization_code.id"],
            name=op.f("fk_oauth_token_authorization_code_id_oauth_authorization_code"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["login_session_id"],
            ["login_session.id"],
            name=op.f("fk_oauth_token_login_session_id_login_session"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["oauth_token.id"], name=op.f("fk_oauth_token_parent_id_oauth_token")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_oauth_token_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_token")),
        sa.UniqueConstraint("jti", name=op.f("uq_oauth_token_jti")),
        sa.UniqueConstraint("refresh_token_hash", name=op.f("uq_oauth_token_refresh_token_hash")),
    )
    with op.batch_alter_table("oauth_token", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oauth_token_authorization_code_id"),
            ["authorization_code_id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_oauth_token_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_oauth_token_family_id"), ["family_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_oauth_token_login_session_id"), ["login_session_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_oauth_token_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("oauth_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_token_user_id"))
        batch_op.drop_index(batch_op.f("ix_oauth_token_login_session_id"))
        batch_op.drop_index(batch_op.f("ix_oauth_token_family_id"))
        batch_op.drop_index(batch_op.f("ix_oauth_token_client_id"))
        batch_op.drop_index(batch_op.f("ix_oauth_token_authorization_code_id"))

    op.drop_table("oauth_token")
    with op.batch_alter_table("session_participant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_participant_login_session_id"))

    op.drop_table("session_participant")
    with op.batch_alter_table("saml_session_index", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_saml_session_index_sp_entity_id"))

    op.drop_table("saml_session_index")
    with op.batch_alter_table("oidc_logout_delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oidc_logout_delivery_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_oidc_logout_delivery_login_session_id"))
        batch_op.drop_index(batch_op.f("ix_oidc_logout_delivery_client_id"))

    op.drop_table("oidc_logout_delivery")
    with op.batch_alter_table("oauth_authorization_code", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_authorization_code_login_session_id"))
        batch_op.drop_index(batch_op.f("ix_oauth_authorization_code_client_id"))

    op.drop_table("oauth_authorization_code")
    op.drop_table("user_group_member")
    op.drop_table("saml_persistent_id")
    with op.batch_alter_table("oauth_consent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_consent_client_id"))

    op.drop_table("oauth_consent")
    op.drop_table("user_group")
    op.drop_table("saml_service_provider")
    with op.batch_alter_table("replay_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_replay_entry_expires_at"))

    op.drop_table("replay_entry")
    op.drop_table("oauth_client")
