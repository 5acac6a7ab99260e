"""The ``idp`` console script: mounts each package's commands; errors become one line."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup
from flask.cli import FlaskGroup
from flask.cli import ScriptInfo
from sqlalchemy.exc import SQLAlchemyError

from idp.errors import IdpError


def _translate(invoke: Callable[[], Any]) -> Any:
    try:
        return invoke()
    except IdpError as error:
        raise click.ClickException(str(error)) from None
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise click.ClickException(f"database error: {reason}") from None


class IdpGroup(AppGroup):
    """A command group whose IdpError and database errors become one line on stderr."""

    def invoke(self, ctx: click.Context) -> Any:
        return _translate(lambda: super(IdpGroup, self).invoke(ctx))

    def group(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", IdpGroup)
        return super().group(*args, **kwargs)


def echo_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout (every listing's ``--json``)."""
    click.echo(json.dumps(value, indent=2, default=str))


def _create_app() -> Flask:
    from idp import create_app

    return create_app()


class _RootGroup(FlaskGroup):
    def invoke(self, ctx: click.Context) -> Any:
        return _translate(lambda: super(_RootGroup, self).invoke(ctx))

    def list_commands(self, ctx: click.Context) -> list[str]:
        # FlaskGroup prints the whole traceback of an app that fails to build (`idp --help`).
        _translate(lambda: ctx.ensure_object(ScriptInfo).load_app())
        return super().list_commands(ctx)


cli = _RootGroup(
    name="idp",
    create_app=_create_app,
    add_default_commands=False,
    add_version_option=False,
    load_dotenv=False,
    set_debug_flag=False,
    help="Single sign-on identity provider: OpenID Provider and SAML 2.0 IdP.",
)


def init_app(app: Flask) -> None:
    """Mount the top-level commands (``init``, ``serve``) on ``app.cli``."""
    app.cli = IdpGroup(app.name)
    from idp import commands

    app.cli.add_command(commands.init_command)
    app.cli.add_command(commands.serve_command)


def main() -> None:
    """Entry point of the console script."""
    try:
        cli.main(prog_name="idp")
    except IdpError as error:  # raised while building the app, before any command runs
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)
