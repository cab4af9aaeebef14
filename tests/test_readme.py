"""The README stays a front door, its test command is the one CI runs, and the docs' links
lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"
MAX_README_LINES = 150
DEMO_COMMAND = "pip install -e . && amber demo"

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```$", re.M | re.S)


def fenced_blocks(path: Path) -> list[str]:
    return FENCE.findall(path.read_text(encoding="utf-8"))


def ci_command() -> str:
    """The command ``.ci/run`` runs: its last line; before it only shell settings."""
    lines = [
        line
        for line in CI.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[:-1] == ["set -euo pipefail", 'cd "$(dirname "$0")/.."'], lines
    return lines[-1]


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second() -> None:
    first = fenced_blocks(README)[0].splitlines()
    assert len(first) == 2, first
    assert first[0] == DEMO_COMMAND
    assert first[1] == ci_command()
    assert "chromium" in first[1]  # so the browser tests run on a fresh machine too
    assert first[1].endswith("pip install -e '.[test]' && python -m pytest")


def markdown_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    text = re.sub(r"^```.*?^```$", "", text, flags=re.M | re.S)  # code is not links
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL, or an anchor in the same page
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if path.exists():
            continue
        broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)} links to missing files: {broken}"
