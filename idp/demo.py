"""Demo data for ``idp init --demo``: users, groups, the Notes and Wiki clients, the Payroll SP."""

from __future__ import annotations

from pathlib import Path

from flask import current_app
from sqlalchemy import select

from idp import db
from idp.models.user import Group
from idp.oidc import storage as oidc_storage
from idp.oidc.clients import ClientSpec
from idp.oidc.clients import register_client
from idp.users import service

DEMO_USERS = (
    ("alice@example.com", "Alice Liddell", "alice-demo-password", False, ("staff", "finance")),
    ("bob@example.com", "Bob Builder", "bob-demo-password", False, ("staff",)),
    ("admin@example.com", "Ada Admin", "admin-demo-password", True, ("staff", "admins")),
)

NOTES_SECRET = "notes-demo-secret-not-for-production-0001"  # noqa: S105 (public demo value)
DEMO_CLIENTS = (
    ClientSpec(
        client_id="notes",
        client_name="Notes",
        redirect_uris=["http://127.0.0.1:5001/callback"],
        post_logout_redirect_uris=["http://127.0.0.1:5001/"],
        backchannel_logout_uri="http://127.0.0.1:5001/backchannel-logout",
        client_secret=NOTES_SECRET,
        is_trusted=True,
    ),
    ClientSpec(
        client_id="wiki",
        client_name="Wiki",
        token_endpoint_auth_method="none",  # noqa: S106 (a method name)
        redirect_uris=["http://127.0.0.1:5002/callback"],
        post_logout_redirect_uris=["http://127.0.0.1:5002/"],
        backchannel_logout_uri="http://127.0.0.1:5002/backchannel-logout",
        is_trusted=True,
    ),
)


def payroll_metadata_path() -> Path:
    """Return where ``make demo`` leaves the Payroll SP's metadata before ``idp init --demo``."""
    settings = current_app.extensions["idp.settings"]
    return Path(settings.instance_dir) / "demo" / "payroll-metadata.xml"


def _group(name: str) -> Group:
    session = db.get_session()
    group = session.scalar(select(Group).where(Group.name == name))
    if group is None:
        group = Group(name=name)
        session.add(group)
    return group


def seed_demo() -> list[str]:
    """Create whatever demo data is missing; return one line per thing said."""
    lines = []
    for email, name, password, is_admin, groups in DEMO_USERS:
        user = service.get_user_by_email(email)
        if user is None:
            user = service.add_user(email, name=name, password=password, is_admin=is_admin)
            lines.append(f"Demo user {email} / {password}")
        else:
            lines.append(f"Demo user {email} exists (password {password})")
        user.groups = [_group(group) for group in groups]
        db.get_session().commit()
    for spec in DEMO_CLIENTS:
        assert spec.client_id is not None  # noqa: S101 (demo clients have fixed ids)
        if not oidc_storage.client_id_exists(spec.client_id):
            register_client(spec)
            lines.append(f"Demo OIDC client {spec.client_id} ({spec.client_name})")
    lines.extend(_seed_payroll())
    return lines


def _seed_payroll() -> list[str]:
    path = payroll_metadata_path()
    if not path.exists():
        return [f"Payroll SP not registered: {path} not found (make demo writes it)"]
    from idp.saml import commands as saml_commands

    entity_id = saml_commands.register_sp_metadata(path.read_bytes(), replace=True)
    return [f"Demo SAML SP {entity_id} (Payroll)"]
