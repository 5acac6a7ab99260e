"""What every ``commands.py`` shares: the error-translating group, stdin and ``--json`` output.

A leaf: it imports no other ``idp`` module but ``errors``, so each package's commands can use it
without reaching back into the console script (``cli.py``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click
from flask.cli import AppGroup
from redis import RedisError
from sqlalchemy.exc import SQLAlchemyError

from idp.errors import IdpError
from idp.errors import InvalidInputError


def translate_errors(invoke: Callable[[], Any]) -> Any:
    """Run ``invoke``; an IdpError, a database or Redis error becomes one line on stderr (exit 1).

    A command that ends sessions needs Redis when it is configured (the session cache must be
    cleared, idp/sessions/cache.py): refused, it changed nothing.
    """
    try:
        return invoke()
    except IdpError as error:
        raise click.ClickException(str(error)) from None
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise click.ClickException(f"database error: {reason}") from None
    except RedisError as error:  # the class only: the message may name the server's address
        raise click.ClickException(f"Redis unavailable ({type(error).__name__})") from None


class IdpGroup(AppGroup):
    """A command group whose IdpError, database and Redis errors become one line on stderr."""

    def invoke(self, ctx: click.Context) -> Any:
        return translate_errors(lambda: super(IdpGroup, self).invoke(ctx))

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
