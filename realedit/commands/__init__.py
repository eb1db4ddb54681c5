"""CLI subcommands, one module per feature; shared error handling here."""
from __future__ import annotations

import functools

import click

from ..errors import RealeditError


# Every command answers -h as well as --help, however it is invoked (click caches a command's
# help option on first use, so inheriting it from the parent context is not enough).
HELP_SETTINGS = {"help_option_names": ["-h", "--help"]}


class CliError(click.ClickException):
    """A RealeditError shown as one line, exiting with the error's own code."""

    def __init__(self, exc: RealeditError):
        super().__init__(str(exc))
        self.exit_code = exc.exit_code


def one_line_errors(interrupted: str = "interrupted; nothing was written"):
    """Decorator: RealeditError -> one line + its exit code; Ctrl-C -> ``interrupted``."""
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except RealeditError as exc:
                raise CliError(exc) from None
            except KeyboardInterrupt:
                raise click.ClickException(interrupted) from None
        return wrapper
    return deco
