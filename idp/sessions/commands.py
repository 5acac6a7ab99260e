"""``idp session list|revoke``."""

from __future__ import annotations

from typing import Any

import click

from idp.cli_support import IdpGroup
from idp.cli_support import echo_json
from idp.errors import NotFoundError
from idp.sessions import service
from idp.users.service import require_user_by_email

cli = IdpGroup("session", help="See and end login sessions.")


@cli.command("list")
@click.option("--user", "email", default=None, help="Only this user's sessions.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def list_(email: str | None, as_json: bool) -> None:
    """List live login sessions."""
    user = require_user_by_email(email) if email else None
    rows: list[dict[str, Any]] = service.describe_logins(service.list_logins(user))
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No live sessions.")
    for row in rows:
        click.echo(f"{row['id']}\t{row['user']}\t{row['ip'] or '-'}\tlast seen {row['last_seen']}")


# A sid is URL-safe base64 and may start with "-": take it as SESSION_ID, not an option.
@cli.command("revoke", context_settings={"ignore_unknown_options": True})
@click.argument("session_id", required=False)
@click.option("--user", "email", default=None, help="End every session of this user.")
def revoke(session_id: str | None, email: str | None) -> None:
    """End a session (or every session of a user) everywhere."""
    if bool(session_id) == bool(email):
        raise click.UsageError("give exactly one of SESSION_ID or --user EMAIL")
    if email:
        user = require_user_by_email(email)
        ended = service.revoke_user_sessions(user, reason="admin_revoked")
        from idp import db

        db.get_session().commit()
        click.echo(f"Ended {len(ended)} session(s) of {user.email}.")
        return
    assert session_id is not None  # noqa: S101  (checked above)
    login = service.get_login_by_sid(session_id)
    if login is None:
        raise NotFoundError(f"no session with id {session_id!r}")
    if not service.revoke_login(login, reason="admin_revoked"):
        click.echo(f"Session {session_id} had already ended.")
        return
    click.echo(f"Ended session {session_id}.")


def register(parent: click.Group) -> None:
    """Mount ``idp session`` on the command line (``create_app`` calls this)."""
    parent.add_command(cli)
