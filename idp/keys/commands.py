"""``idp key list|rotate``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from idp import db
from idp.cli_support import IdpGroup
from idp.cli_support import echo_json
from idp.keys import service
from idp.keys.store import KeyInfo

cli = IdpGroup("key", help="See and rotate the signing keys.")


def _row(info: KeyInfo) -> dict[str, Any]:
    return {
        "kid": info.kid,
        "kind": info.kind,
        "state": info.state,
        "created": info.created_at.isoformat(),
        "activates": info.activates_at.isoformat(),
    }


def _echo_table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    widths = [max([len(name)] + [len(str(row[name])) for row in rows]) for name in columns]
    lines = [[name.upper() for name in columns]]
    lines += [[str(row[name]) for name in columns] for row in rows]
    for line in lines:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


def _when(activates_at: datetime, now: datetime) -> str:
    if activates_at <= now:
        return "signs now"
    return f"starts signing at {activates_at.isoformat()}"


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def list_(as_json: bool) -> None:
    """List the signing keys and their state (next, active, retiring, retired)."""
    rows = [_row(info) for info in service.list_keys()]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No signing keys: run `idp init`.")
        return
    _echo_table(rows, ("kid", "kind", "state", "activates"))


@cli.command("rotate")
@click.option(
    "--now",
    "immediate",
    is_flag=True,
    help="Sign with the new keys at once (after a compromise) instead of after the JWKS max age.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def rotate(immediate: bool, as_json: bool) -> None:
    """Add a new key of each kind; it is published at once and signs after the JWKS max age."""
    now = db.now()
    created = service.rotate_keys(immediate=immediate)
    if as_json:
        echo_json([_row(info) for info in created])
        return
    for info in created:
        click.echo(f"New {info.kind} key {info.kid}: {_when(info.activates_at, now)}.")


def register(parent: click.Group) -> None:
    """Mount ``idp key`` on the command line (``create_app`` calls this)."""
    parent.add_command(cli)
