"""The ``amber`` command line: parse arguments, make one library call, render the result.

Data goes to stdout; messages, errors and progress to stderr. Every error is one line,
``Error: <message>``, with no traceback unless ``--debug`` is given.

Exit codes: 0 done; 1 done, but some posts or files failed (each was reported);
2 bad input or arguments; 3 something outside amber failed; 130 interrupted (Ctrl-C).

Commands live in one module per area (``banks``, ``scan``, ``decisions``, ``review``,
``appeals``, ``explain``, ``lookup``, ``tokens``, ``evidence``, ``webhook``, ``harm_poll``,
``serve``, ``consume``, ``doctor``);
this module builds the app and holds the one error handler. Nothing heavy is imported
until a command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from amber import __version__
from amber.cli.accounts import account_app
from amber.cli.appeals import appeal_app
from amber.cli.banks import bank_app
from amber.cli.consume import consume
from amber.cli.decisions import decisions_app
from amber.cli.doctor import doctor
from amber.cli.evidence import evidence_app
from amber.cli.exchange import exchange_app
from amber.cli.explain import explain
from amber.cli.harm_poll import harm_poll_app
from amber.cli.incidents import incident_app
from amber.cli.lookup import compare_hashes, hash_files, lookup_targets
from amber.cli.options import err, out
from amber.cli.orders import order_app
from amber.cli.reports import reports_app
from amber.cli.retrohunt import retrohunt
from amber.cli.review import review_app
from amber.cli.scan import scan
from amber.cli.serve import serve
from amber.cli.statements import statements
from amber.cli.tokens import token_app
from amber.cli.transparency import report
from amber.cli.webhook import webhook_app
from amber.errors import AmberError, ExternalError

__all__ = ["app", "main"]


class AmberGroup(TyperGroup):
    """The root command: runs a command under the one error handler.

    Usage errors are click's own (exit 2, with the usage line); amber's errors print one
    ``Error:`` line and exit with the code their class carries.
    """

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):  # typer's own: usage errors, exits
            raise
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except Exception as exc:
            if debug:
                raise
            message, code = _describe(exc)
            err.print(f"Error: {message}")
            raise typer.Exit(code) from None


def _describe(exc: Exception) -> tuple[str, int]:
    """The one-line message and exit code for an error that reached the command line."""
    if isinstance(exc, AmberError):
        return exc.message, exc.exit_code
    sqlalchemy = sys.modules.get("sqlalchemy")  # not loaded: the error cannot be its
    if sqlalchemy is not None and isinstance(
        exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.TimeoutError
    ):
        from amber.store.db import database_failed

        return database_failed(exc), ExternalError.exit_code  # it went away after opening
    if isinstance(exc, OSError):  # the system refused: disk full, permissions, a closed pipe
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}", ExternalError.exit_code
    return (
        f"internal error ({type(exc).__name__}: {exc}); rerun with --debug "
        "for a traceback and report it",
        1,
    )


app = typer.Typer(
    cls=AmberGroup,
    help="amber: stop interactive-atrocity posts, catch re-uploads by PDQ, keep the evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """amber command line."""


@app.command()
def version() -> None:
    """Print amber's version."""
    out.print(__version__)


app.add_typer(bank_app, name="bank")
app.add_typer(exchange_app, name="exchange")
app.command()(scan)
app.command()(consume)
app.add_typer(decisions_app, name="decisions")
app.command()(statements)
app.add_typer(review_app, name="review")
app.add_typer(appeal_app, name="appeal")
app.add_typer(incident_app, name="incident")
app.add_typer(order_app, name="order")
app.command()(report)
app.command()(explain)
app.command("hash")(hash_files)
app.command("lookup")(lookup_targets)
app.command("compare")(compare_hashes)
app.add_typer(harm_poll_app, name="harm-poll")
app.add_typer(token_app, name="token")
app.add_typer(evidence_app, name="evidence")
app.add_typer(webhook_app, name="webhook")
app.add_typer(account_app, name="account")
app.add_typer(reports_app, name="reports")
app.command()(retrohunt)
app.command()(serve)
app.command()(doctor)


@app.command()
def demo(
    dir: Annotated[Path, typer.Option("--dir", help="Folder for the demo's files")] = Path(
        "amber-demo"
    ),
) -> None:
    """Walk through the case: a bank of known images, a result post and its re-uploads."""
    from amber.demo import run_demo

    run_demo(dir, out=out, err=err)


def main() -> None:
    """Entry point of the ``amber`` console script."""
    app()
