"""Write docs/cli.md, the command-line reference, from the commands' own ``--help``.

Run ``python -m amber.cli.docs > docs/cli.md`` after changing a command; a test fails while
the checked-in file differs from what this prints.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: Columns of the help text in the reference.
WIDTH = 100
HEADER = """\
# amber command-line reference

Generated from the commands' `--help` by `python -m amber.cli.docs > docs/cli.md`; do not
edit by hand. Exit codes: 0 done; 1 done, but some posts or files failed (each was
reported); 2 bad input or arguments; 3 something outside amber failed; 130 interrupted.
Data goes to stdout, messages and errors to stderr (`Error: <message>`, no traceback
unless `--debug`).
"""


def command_paths() -> Iterator[tuple[str, ...]]:
    """Every command and group, depth first in the order ``amber --help`` lists them."""
    import typer.main

    from amber.cli import app

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            if not getattr(sub, "hidden", False):
                yield from walk(sub, (*path, name))

    yield from walk(typer.main.get_command(app), ())


def help_text(path: tuple[str, ...]) -> str:
    """``amber PATH --help`` as plain text, ``WIDTH`` columns wide."""
    from typer.testing import CliRunner

    from amber.cli import app

    env = {"COLUMNS": str(WIDTH), "TERMINAL_WIDTH": str(WIDTH), "NO_COLOR": "1"}
    result = CliRunner().invoke(app, [*path, "--help"], env=env, prog_name="amber")
    return "\n".join(line.rstrip() for line in result.stdout.splitlines()).strip("\n")


def render() -> str:
    """The whole reference, as Markdown."""
    parts = [HEADER]
    for path in command_paths():
        parts.append(f"## {' '.join(('amber', *path))}\n\n```text\n{help_text(path)}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
