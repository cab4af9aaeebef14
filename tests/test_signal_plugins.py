"""Third-party signal types from the ``amber.signal_types`` entry point, end to end.

A small real plug-in (``amber-meanrgb``: the mean colour of an image as 6 hex digits, a
near-match type without an index of its own) is built by setuptools from its pyproject
into a folder that goes on the path, as an installed distribution would. amber finds it
when the engine is built, computes it in the hashing workers, banks it from files and
CSV rows, matches posts on it and names it in the reasons.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from amber.engine import open_engine
from amber.errors import ConflictError, UserError
from amber.index.signal import BruteForceIndex
from amber.signals.contract import check_signal_type

PLUGIN = '''
"""amber-meanrgb: the mean red, green and blue of an image, as 6 hex digits."""

import re

from PIL import ImageStat

from amber.errors import SignalValueError
from amber.signals import Content, Role, SignalType, SignalValue


class MeanRgbSignal(SignalType):
    name = "meanrgb"
    version = 1
    exact = False
    default_threshold = 6

    def compute(self, content: Content, *, role: Role = Role.query) -> list[SignalValue]:
        if content.image is None:
            return []
        mean = ImageStat.Stat(content.image.convert("RGB")).mean
        return [SignalValue(self.name, "".join(f"{round(c):02x}" for c in mean))]

    def validate(self, text: str) -> str:
        value = text.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{6}", value):
            raise SignalValueError(
                "expected 6 hex digits (mean red, green, blue)", signal_type=self.name, value=text
            )
        return value

    def distance(self, a: str, b: str) -> int:
        return max(abs(int(a[i : i + 2], 16) - int(b[i : i + 2], 16)) for i in (0, 2, 4))

    def examples(self) -> list[str]:
        return ["000000", "ff8000", "7f7f7f"]
'''

PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "amber-meanrgb"
version = "0.1.0"

[project.entry-points."amber.signal_types"]
{entry_points}

[tool.setuptools]
py-modules = ["{module}"]
"""


def build_distribution(root: Path, *, module: str, source: str, entry_points: str) -> Path:
    """Build a distribution from a source tree with setuptools (its metadata and entry
    points from pyproject.toml) into ``root/site``, ready to put on the path."""
    tree, site = root / "tree", root / "site"
    tree.mkdir(parents=True)
    site.mkdir()
    (tree / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    (tree / "pyproject.toml").write_text(
        PYPROJECT.format(entry_points=entry_points, module=module), encoding="utf-8"
    )
    built = subprocess.run(
        [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "egg_info",
         "--egg-base", str(site)],
        cwd=tree, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (site / f"{module}.py").write_text((tree / f"{module}.py").read_text(), encoding="utf-8")
    return site


@pytest.fixture
def meanrgb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The amber-meanrgb plug-in, installed on this process's path and its children's."""
    site = build_distribution(
        tmp_path / "plugin",
        module="amber_meanrgb",
        source=PLUGIN,
        entry_points='meanrgb = "amber_meanrgb:MeanRgbSignal"',
    )
    monkeypatch.syspath_prepend(str(site))
    paths = [str(site), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    return site


def _solid(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (96, 64), colour).save(path)
    return path


def test_a_plugin_type_is_computed_banked_matched_and_explained(
    meanrgb: Path,
    tmp_path: Path,
    amber_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    # Flat colours: their PDQ quality is 0, so only the plug-in's signal can match them.
    banked = _solid(tmp_path / "bank" / "red.png", (200, 10, 10))
    assert amber_cli("bank", "create", "files", "--action", "remove").returncode == 0
    assert amber_cli("bank", "create", "rows", "--action", "restrict").returncode == 0
    added = amber_cli("bank", "add", "files", banked)
    assert added.returncode == 0, added.stderr
    (tmp_path / "rows.csv").write_text("signal_type,signal,label\nmeanrgb,0a0ac8,blue-ish\n")
    imported = amber_cli("bank", "import", "rows", tmp_path / "rows.csv")
    assert imported.returncode == 0, imported.stderr
    exported = amber_cli("bank", "export", "files")
    assert exported.stdout.splitlines()[-1].split(",")[:3] == ["meanrgb", "c80a0a", "files"]

    colours = {"near-red": (202, 10, 10), "near-blue": (10, 10, 203)}
    colours |= {f"green-{n}": (10, 200 + n, 10) for n in range(7)}
    posts = [
        {"id": post_id, "media": [{"path": str(_solid(tmp_path / "in" / f"{post_id}.png", c))}]}
        for post_id, c in colours.items()
    ]
    (tmp_path / "posts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in posts))
    # Nine posts and two workers: the hashing runs in worker processes. The default
    # policy's bank-match rule counts every media signal type, the plug-in's too.
    scanned = amber_cli("scan", "posts.jsonl", "--format", "jsonl", "--workers", "2")
    assert scanned.returncode == 0, scanned.stderr
    results = {r["post_id"]: r for r in map(json.loads, scanned.stdout.splitlines())}
    assert results["near-red"]["verdict"] == "remove"
    [reason] = results["near-red"]["reasons"]
    assert reason == reason | {
        "signal": "meanrgb",
        "bank": "files",
        "label": "files",
        "distance": 2,
        "detail": f"entry {str(banked)!r}",
    }
    assert results["near-blue"]["verdict"] == "restrict"
    [reason] = results["near-blue"]["reasons"]
    assert (reason["signal"], reason["bank"], reason["label"], reason["distance"]) == (
        "meanrgb",
        "rows",
        "blue-ish",
        3,
    )
    assert {results[f"green-{n}"]["verdict"] for n in range(7)} == {"allow"}


def test_the_plugin_type_keeps_the_contract_and_is_stored_per_post(
    meanrgb: Path, tmp_path: Path, database: str
) -> None:
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        signal_type = engine.signals.get("meanrgb")
        check_signal_type(signal_type, workdir=tmp_path / "contract")
        assert isinstance(engine.matcher.indexes["meanrgb"], BruteForceIndex)
        from amber.posts import parse_post

        image = _solid(tmp_path / "x.png", (1, 2, 3))
        post = parse_post({"id": "x", "media": [{"path": str(image)}]}, base=tmp_path, source="t")
        engine.decide_post(post)
        [media] = engine.review.media_hashes("x")
        assert media["meanrgb"] == "010203"


def _install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str, entry: str
) -> None:
    """Install a plug-in module (a name of its own: Python caches modules by name)."""
    site = build_distribution(tmp_path / "plugin", module=module, source=source, entry_points=entry)
    monkeypatch.syspath_prepend(str(site))


def test_a_plugin_that_fails_to_load_is_a_user_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(
        tmp_path,
        monkeypatch,
        "amber_broken",
        "import no_such_module_here\n",
        'broken = "amber_broken:X"',
    )
    with pytest.raises(
        UserError,
        match=r"plug-in entry point 'broken' = 'amber_broken:X' in group 'amber.signal_types' "
        r"of amber-meanrgb 0.1.0 could not be loaded \(ModuleNotFoundError",
    ):
        open_engine(db=tmp_path / "a.db", vault=tmp_path / "v")


def test_a_plugin_reusing_a_built_in_name_is_a_conflict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = PLUGIN.replace("MeanRgbSignal", "Pdq2").replace('name = "meanrgb"', 'name = "pdq"')
    _install(tmp_path, monkeypatch, "amber_pdq2", source, 'pdq = "amber_pdq2:Pdq2"')
    with pytest.raises(
        ConflictError,
        match=r"entry point 'pdq' = 'amber_pdq2:Pdq2'.*: signal type 'pdq' is already registered",
    ):
        open_engine(db=tmp_path / "a.db", vault=tmp_path / "v")


def test_a_plugin_named_unlike_its_entry_point_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(tmp_path, monkeypatch, "amber_rgb", PLUGIN, 'rgb = "amber_rgb:MeanRgbSignal"')
    with pytest.raises(
        UserError,
        match=r"entry point 'rgb' .* loads signal type 'meanrgb'; the entry point and the item",
    ):
        open_engine(db=tmp_path / "a.db", vault=tmp_path / "v")


def test_a_plugin_that_is_not_a_signal_type_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(tmp_path, monkeypatch, "amber_thing", "thing = 42\n", 'thing = "amber_thing:thing"')
    with pytest.raises(UserError, match=r"gives 42, not an amber.signals.SignalType"):
        open_engine(db=tmp_path / "a.db", vault=tmp_path / "v")
