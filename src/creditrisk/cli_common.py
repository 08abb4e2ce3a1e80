"""What every `creditrisk` sub-command shares: how a sub-app is made, user errors as one
message, JSON output."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console

from creditrisk.errors import CreditRiskError

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def sub_app(help: str) -> typer.Typer:
    """A command group mounted under ``creditrisk`` (and runnable on its own): its help
    when called without a command; errors a user can act on are one message (see
    :func:`user_errors`), so no pretty-printed tracebacks."""
    return typer.Typer(help=help, no_args_is_help=True, pretty_exceptions_enable=False)


def user_errors(fn: F) -> F:
    """Print a :class:`CreditRiskError` as one message and exit 2, without a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CreditRiskError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True,
                          soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def print_json(obj: Any) -> None:
    """The command's result on stdout (logs and progress go to stderr)."""
    typer.echo(json.dumps(obj, indent=2, default=str))
