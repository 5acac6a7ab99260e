"""The ``idp`` console script: builds the app, whose ``app.cli`` holds every command."""

from __future__ import annotations

import sys
from typing import Any

import click
from flask.cli import FlaskGroup
from flask.cli import ScriptInfo

from idp import create_app
from idp.cli_support import translate_errors
from idp.errors import IdpError

# FlaskGroup's own options: an operator has no app to pick, no .env to load, no debugger to start.
FLASK_OPTIONS = frozenset({"app", "env_file", "debug"})


class _RootGroup(FlaskGroup):
    def __init__(self, **extra: Any) -> None:
        super().__init__(**extra)
        self.params = [param for param in self.params if param.name not in FLASK_OPTIONS]

    def invoke(self, ctx: click.Context) -> Any:
        return translate_errors(lambda: super(_RootGroup, self).invoke(ctx))

    def list_commands(self, ctx: click.Context) -> list[str]:
        # FlaskGroup prints the whole traceback of an app that fails to build (`idp --help`).
        # https://github.com/pallets/flask/blob/3.1.3/src/flask/cli.py#L658-L661
        translate_errors(lambda: ctx.ensure_object(ScriptInfo).load_app())
        return super().list_commands(ctx)


cli = _RootGroup(
    name="idp",
    create_app=create_app,
    add_default_commands=False,
    add_version_option=False,
    load_dotenv=False,
    set_debug_flag=False,
    help="Single sign-on identity provider: OpenID Provider and SAML 2.0 IdP.",
)


def main() -> None:
    """Entry point of the console script."""
    try:
        cli.main(prog_name="idp")
    except IdpError as error:  # raised while building the app, before any command runs
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)
