"""``idp token create|list|revoke``: personal access tokens for bootstrap scripts."""

from __future__ import annotations

from datetime import timedelta

import click

from idp import db
from idp.cli_support import IdpGroup
from idp.cli_support import echo_json
from idp.settings import PAT_SCOPES
from idp.tokens import service
from idp.users.service import require_user_by_email

cli = IdpGroup("token", help="Manage personal access tokens.")


@cli.command("create")
@click.argument("email")
@click.option("--name", required=True, help="What the token is for.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(PAT_SCOPES),
    help="A scope (repeat for several; default: openid). admin only for admin users.",
)
@click.option(
    "--expires-in",
    type=click.IntRange(min=1),
    default=None,
    help="Days until it expires (default: the policy's maximum lifetime).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def create(
    email: str, name: str, scopes: tuple[str, ...], expires_in: int | None, as_json: bool
) -> None:
    """Create a personal access token for a user and print it (once)."""
    user = require_user_by_email(email)
    now = db.now()
    if expires_in is None:
        expires_at = service.max_expiry(now)
    else:
        expires_at = now + timedelta(days=expires_in)
    row, secret = service.create_token(
        user, name=name, scopes=list(scopes) or ["openid"], expires_at=expires_at
    )
    described = service.describe_token(row)
    if as_json:
        echo_json(
            {
                "id": row.id,
                "token": secret,
                "expires_at": described["expires_at"],
                "scopes": described["scopes"],
            }
        )
        return
    click.echo(f"Created token {row.id} for {user.email}, expiring {described['expires_at']}:")
    click.echo(secret)
    click.echo("Copy it now: it is not shown again.", err=True)


@cli.command("list")
@click.option("--user", "email", default=None, help="Only this user's tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def list_(email: str | None, as_json: bool) -> None:
    """List personal access tokens (never their secrets)."""
    user = require_user_by_email(email) if email else None
    rows = [service.describe_token(row) for row in service.list_tokens(user)]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No personal access tokens.")
    for row in rows:
        state = "revoked" if row["revoked_at"] else f"expires {row['expires_at'] or 'never'}"
        click.echo(f"{row['id']}\t{row['user']}\t{row['prefix']}\t{row['name']}\t{state}")


@cli.command("revoke")
@click.argument("token_id", type=int)
def revoke(token_id: int) -> None:
    """Revoke a personal access token."""
    row = service.require_token(token_id)
    if not service.revoke_token(row, reason="admin_revoked"):
        click.echo(f"Token {token_id} was already revoked.")
        return
    click.echo(f"Revoked token {token_id} ({row.prefix}).")


def register(parent: click.Group) -> None:
    """Mount ``idp token`` on the command line (``create_app`` calls this)."""
    parent.add_command(cli)
