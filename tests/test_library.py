"""amber as a library: the public names of ``import amber``, and the README's snippet run
for real.

The snippet is the README's first ``python`` block, executed as it stands in a fresh
folder that holds what it reads (``photo.jpg``, ``posts.jsonl``), so the README cannot
drift from the API. ``docs/library.md`` opens with the same block, word for word.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import ImageOps

import amber
from amber import errors
from amber.synthetic import photo

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
LIBRARY_DOC = ROOT / "docs" / "library.md"

PUBLIC = {
    "open_engine",
    "Engine",
    "ScanResult",
    "Post",
    "read_input",
    "__version__",
    "AmberError",
    "UserError",
    "NotFoundError",
    "AuthenticationError",
    "PermissionDeniedError",
    "ConflictError",
    "PostError",
    "MediaError",
    "SignalValueError",
    "PolicyError",
    "ExternalError",
    "InternalError",
}


def python_blocks(path: Path) -> list[str]:
    """The ``python`` fenced blocks of a Markdown file, in order."""
    return re.findall(r"^```python\n(.*?)^```$", path.read_text(encoding="utf-8"), re.M | re.S)


def test_public_names_import_from_amber() -> None:
    assert set(amber.__all__) == PUBLIC
    assert len(amber.__all__) == len(PUBLIC)
    assert set(dir(amber)) >= PUBLIC
    namespace: dict[str, object] = {}
    exec(f"from amber import {', '.join(sorted(PUBLIC))}", namespace)
    for name in PUBLIC - {"__version__"}:
        assert namespace[name] is getattr(amber, name)
    assert namespace["open_engine"].__module__ == "amber.engine"
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        amber.nothing_here  # noqa: B018


def test_error_classes_are_the_error_tree() -> None:
    for name in PUBLIC:
        value = getattr(amber, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert value is getattr(errors, name)
            assert issubclass(value, amber.AmberError)
    assert (amber.UserError.exit_code, amber.ExternalError.exit_code) == (2, 3)
    assert issubclass(amber.PostError, amber.UserError)
    assert issubclass(amber.NotFoundError, amber.UserError)


def test_import_amber_stays_light() -> None:
    """``amber --help`` must stay fast: ``import amber`` loads no database or image code."""
    code = "import sys, amber; print(sorted(m for m in sys.modules if m.split('.')[0] in " + (
        "('sqlalchemy', 'numpy', 'PIL', 'amber')))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(amber.__file__).parent.parent)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == "['amber']"


def test_readme_snippet_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snippet = python_blocks(README)[0]
    assert snippet in python_blocks(LIBRARY_DOC)
    known = photo(7)
    known.save(tmp_path / "photo.jpg", quality=90)
    (tmp_path / "uploads").mkdir()
    ImageOps.mirror(known).resize((480, 360)).save(tmp_path / "uploads" / "copy.jpg", quality=70)
    photo(8).save(tmp_path / "uploads" / "holiday.jpg", quality=90)
    posts = [
        {"id": "p-1", "author": "group", "media": [{"path": "uploads/copy.jpg"}]},
        {
            "id": "p-2",
            "author": "group",
            "text": "Kill him or let him go? You have one hour to vote",
            "poll": {"question": "What should we do with him?", "options": ["Kill", "Free"]},
        },
        {"id": "p-3", "author": "someone", "media": [{"path": "uploads/holiday.jpg"}]},
        {"text": "a line without an id"},
    ]
    lines = "".join(json.dumps(p) + "\n" for p in posts)
    (tmp_path / "posts.jsonl").write_text(lines, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, "README.md", "exec"), {"__name__": "readme"})
    assert out.getvalue().splitlines() == [  # as docs/library.md shows it
        "p-1 remove ['remove']",
        "p-2 restrict ['restrict', 'review', 'freeze_poll', 'escalate:threat_to_life', "
        "'suspend_account']",
        "p-3 allow []",
        "error: posts.jsonl line 4, field 'id': missing required post id",
    ]
    assert (tmp_path / "amber.db").is_file()
    assert (tmp_path / "amber-vault" / "log" / "records.jsonl").is_file()  # p-1, p-2 preserved
