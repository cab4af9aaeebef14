"""docs/cli.md is the commands' own help: regenerate it when a command changes."""

from __future__ import annotations

from pathlib import Path

from amber.cli.docs import command_paths, render

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def test_docs_cli_md_is_current() -> None:
    assert DOCS.read_text(encoding="utf-8") == render(), (
        "docs/cli.md is stale: run python -m amber.cli.docs > docs/cli.md"
    )


def test_the_reference_covers_every_command() -> None:
    paths = set(command_paths())
    assert {("scan",), ("bank", "create"), ("decisions", "list"), ("token", "list")} <= paths
    text = DOCS.read_text(encoding="utf-8")
    for path in paths:
        assert f"## {' '.join(('amber', *path))}\n" in text
    assert "--verdict" in text and "Usage: amber decisions show" in text
