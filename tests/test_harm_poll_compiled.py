"""The compiled lexicon index kept in the user cache (``amber.harm_poll.compiled``)."""

from __future__ import annotations

import hashlib
import marshal
from dataclasses import dataclass
from pathlib import Path

import pytest

from amber.harm_poll import compiled
from amber.harm_poll.lexicon import load
from amber.harm_poll.matcher import Index


@dataclass
class First:
    """What the first process did in an empty cache."""

    folder: Path
    index: Index
    data: bytes


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> First:
    folder = tmp_path_factory.mktemp("first")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(folder))
        assert not compiled.cache_path().exists()
        index = compiled.default_index()  # nothing kept yet: compiled, then written
        return First(folder, index, compiled.cache_path().read_bytes())


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def test_the_first_process_writes_the_index_and_the_next_reads_the_same(
    first: First, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(first.folder))
    path = compiled.cache_path()
    assert path.parent == first.folder / "amber"
    assert path.name == f"harm-poll-{compiled.fingerprint()[:32]}.marshal"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    again = compiled.default_index()  # now read from the file
    assert again is not first.index
    assert again == first.index  # every pattern, lookup and lexicon alike
    assert again.lexicons == {lex.language: lex for lex in load()}


def _keep(data: bytes) -> Path:
    path = compiled.cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="cut-short"),
        pytest.param(lambda data: data[:-1] + bytes([data[-1] ^ 1]), id="one-bit-flipped"),
        pytest.param(lambda data: b"not amber\n" + data[10:], id="another-file"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
def test_a_damaged_file_is_ignored(cache: Path, first: First, damage: object) -> None:
    assert compiled.read(_keep(first.data)) is not None
    assert callable(damage)
    assert compiled.read(_keep(damage(first.data))) is None


def test_a_sound_file_of_another_layout_is_ignored(cache: Path) -> None:
    for payload in (marshal.dumps((compiled.FORMAT + 1,)), marshal.dumps(["a", "list"])):
        assert (
            compiled.read(_keep(compiled._MAGIC + hashlib.sha256(payload).digest() + payload))
            is None
        )


def test_a_cache_that_cannot_be_written_is_done_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: First
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    index = compiled.read(_keep(first.data))
    assert index is not None
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache folder would be inside this file")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    path = compiled.cache_path()
    assert not compiled.write(index, path)
    assert compiled.read(path) is None
    assert blocker.read_text() == "the cache folder would be inside this file"


def test_the_file_name_is_the_same_for_the_same_amber(cache: Path) -> None:
    assert compiled.fingerprint() == compiled.fingerprint()
    assert len(compiled.fingerprint()) == 64
