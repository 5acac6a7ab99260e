"""``idp user add|list|disable|unlock``."""

from __future__ import annotations

import click

from idp.cli_support import IdpGroup
from idp.cli_support import echo_json
from idp.cli_support import read_stdin_line
from idp.users import service

cli = IdpGroup("user", help="Manage user accounts.")


@cli.command("add")
@click.argument("email")
@click.option("--name", required=True, help="Display name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--admin", is_flag=True, help="Give the user administrator rights.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def add(email: str, name: str, password_stdin: bool, admin: bool, as_json: bool) -> None:
    """Create a user (without --password-stdin the account cannot log in with a password)."""
    password = read_stdin_line("password") if password_stdin else None
    user = service.add_user(email, name=name, password=password, is_admin=admin)
    if as_json:
        echo_json({"email": user.email, "name": user.name, "admin": user.is_admin})
    else:
        click.echo(f"Added user {user.email}{' (admin)' if user.is_admin else ''}.")


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def list_(as_json: bool) -> None:
    """List users."""
    users = service.list_users()
    rows = [
        {
            "email": user.email,
            "name": user.name,
            "admin": user.is_admin,
            "disabled": user.is_disabled,
            "created": user.created_at.isoformat(),
        }
        for user in users
    ]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        flags = ",".join(
            flag for flag, on in (("admin", row["admin"]), ("disabled", row["disabled"])) if on
        )
        click.echo(f"{row['email']}\t{row['name']}\t{flags or '-'}")


@cli.command("disable")
@click.argument("email")
def disable(email: str) -> None:
    """Disable a user and end their sessions."""
    user = service.disable_user(email)
    click.echo(f"Disabled {user.email}.")


@cli.command("unlock")
@click.argument("email")
def unlock(email: str) -> None:
    """Lift a brute-force lockout of a user's account."""
    user = service.require_user_by_email(email)
    if service.unlock_user(user):
        click.echo(f"Unlocked {user.email}.")
    else:
        click.echo(f"{user.email} was not locked.")


def register(parent: click.Group) -> None:
    """Mount ``idp user`` on the command line (``create_app`` calls this)."""
    parent.add_command(cli)
