"""Shared fixtures: a fresh engine per test, generated photos on disk, the CLI as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from amber.engine import Engine, open_engine
from amber.synthetic import photo


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine on a new SQLite database and vault in ``tmp_path``."""
    with open_engine(db=tmp_path / "amber.db", vault=tmp_path / "vault") as eng:
        yield eng


@pytest.fixture
def photo_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a generated photo: ``photo_file(seed, name="x.png", size=(w, h), quality=90)``."""

    def make(
        seed: int,
        name: str | None = None,
        size: tuple[int, int] = (640, 480),
        quality: int = 92,
        image: Image.Image | None = None,
    ) -> Path:
        path = tmp_path / "images" / (name or f"photo-{seed}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        img = image if image is not None else photo(seed, *size)
        if path.suffix.lower() in (".jpg", ".jpeg"):
            img.save(path, quality=quality)
        else:
            img.save(path)
        return path

    return make


@pytest.fixture
def write_posts(tmp_path: Path) -> Callable[[list[object]], Path]:
    """Write posts (dicts are JSON-encoded, strings written as they are) to a JSONL file."""

    def write(lines: list[object], name: str = "posts.jsonl") -> Path:
        path = tmp_path / name
        text = "".join(
            (line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines
        )
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def amber_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real ``amber`` command in a process, with state in ``tmp_path``."""

    def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "AMBER_DB": str(tmp_path / "amber.db"),
            "AMBER_VAULT": str(tmp_path / "vault"),
            "COLUMNS": "200",
        }
        return subprocess.run(
            [sys.executable, "-m", "amber", *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd or tmp_path,
            timeout=300,
        )

    return run
