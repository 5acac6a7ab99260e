"""``idp user totp enroll|reset``: an administrator gives or takes away a user's second factor."""

from __future__ import annotations

import click

from idp.cli_support import IdpGroup
from idp.cli_support import echo_json
from idp.mfa import service
from idp.users.service import require_user_by_email

cli = IdpGroup("totp", help="Manage users' TOTP second factor.")


@cli.command("enroll")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def enroll(email: str, as_json: bool) -> None:
    """Give a user a TOTP factor and print its secret (once); it is on at once."""
    user = require_user_by_email(email)
    enrolment = service.enroll_now(user)
    if as_json:
        echo_json({"secret": enrolment.secret, "uri": enrolment.uri})
        return
    click.echo(f"TOTP is on for {user.email}. Give them this, once, over a safe channel:")
    click.echo(f"secret: {enrolment.secret}")
    click.echo(f"uri:    {enrolment.uri}")


@cli.command("reset")
@click.argument("email")
def reset(email: str) -> None:
    """Remove every second factor of a user (TOTP, recovery codes, passkeys)."""
    user = require_user_by_email(email)
    removed = service.reset_factors(user)
    click.echo(f"Removed {removed} second factor(s) of {user.email}.")


def register(parent: click.Group) -> None:
    """Mount ``idp user totp`` under ``idp user`` (``create_app`` calls this after users')."""
    user_group = parent.commands["user"]
    assert isinstance(user_group, click.Group)  # noqa: S101 (users' commands registered first)
    user_group.add_command(cli)
