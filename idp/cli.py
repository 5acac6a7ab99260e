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
from idp.errors import InvalidInputError

# FlaskGroup's own options: an operator has no app to pick, no .env to load, no debugger to start.
FLASK_OPTIONS = frozenset({"app", "env_file", "debug"})


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


def read_stdin_line(what: str) -> str:
    """Return one non-empty UTF-8 line from standard input, without its line ending.

    Raises:
        InvalidInputError: the line is empty or not UTF-8.

    """
    try:
        line = sys.stdin.buffer.readline().decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise InvalidInputError(f"the {what} read from standard input is not UTF-8") from None
    if not line:
        raise InvalidInputError(f"the {what} read from standard input is empty")
    return line


def echo_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout (every listing's ``--json``)."""
    click.echo(json.dumps(value, indent=2, default=str))


def _create_app() -> Flask:
    from idp import create_app

    return create_app()


class _RootGroup(FlaskGroup):
    def __init__(self, **extra: Any) -> None:
        super().__init__(**extra)
        self.params = [param for param in self.params if param.name not in FLASK_OPTIONS]

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
