"""The compiled lexicon index, kept in the user cache between processes.

Compiling the package's lexicons (``lexicon.load`` then ``matcher.build_index``: about
30,000 entries of 100 languages into 116,000 patterns) costs about 4 s of CPU, and every
process pays it at its first text post: each worker of ``amber serve``, each ``amber
scan``. What it gives depends only on the lexicon files, the code that reads and compiles
them, and the versions of amber, Python, Unicode and the Snowball stemmers, so the first
process writes it to ``$XDG_CACHE_HOME/amber/harm-poll-<fingerprint>.marshal`` (``~/.cache``
when that is unset) and later ones read it back in a fraction of the time.

The fingerprint is a SHA-256 of all those inputs: an edited lexicon or a new amber gets a
new file, never an old index. The file holds a SHA-256 of its payload: a file that is
cut short, damaged or of another format is ignored and the index built again. Writing is
best effort (a read-only home still works, without the cache) and atomic (a temporary file
renamed), so processes starting at once never read half a file. The cache folder is
trusted like the rest of the user's home: whoever can write there can already change
what amber runs.
"""

from __future__ import annotations

import gc
import hashlib
import marshal
import os
import sys
import tempfile
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields
from importlib import metadata
from importlib.resources import files
from pathlib import Path
from typing import Any

from amber.harm_poll import lexicon as lexicon_module
from amber.harm_poll import matcher, normalize
from amber.harm_poll.lexicon import Coverage, CueClass, Lexicon
from amber.harm_poll.matcher import Index, Pattern, Slot, SlotKind

#: Changes whenever the layout of the payload below changes.
FORMAT = 2
#: Fields of ``Index`` that hold plain values, kept as they are.
_PLAIN = (
    "stem_lengths_by_start",
    "clitics",
    "all_clitics",
    "numbers",
    "stopwords",
    "stopword_languages",
    "target_suffixes",
    "target_prefixes",
    "languages",
    "stemmers",
)
_MAGIC = b"amber-harm-poll-index\n"
_DIGEST = hashlib.sha256().digest_size


def cache_path() -> Path:
    """Where this amber's compiled index is kept (the file name is its fingerprint)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "amber" / f"harm-poll-{fingerprint()[:32]}.marshal"


def fingerprint() -> str:
    """SHA-256 of everything the compiled index depends on."""
    from amber import __version__

    h = hashlib.sha256()
    try:
        stemmer = metadata.version("PyStemmer")
    except metadata.PackageNotFoundError:
        stemmer = "unknown"
    for part in (
        f"format {FORMAT}",
        f"amber {__version__}",
        f"python {sys.version_info[0]}.{sys.version_info[1]}",
        f"unicode {unicodedata.unidata_version}",
        f"pystemmer {stemmer}",
    ):
        h.update(part.encode() + b"\0")
    for module in (lexicon_module, matcher, normalize, sys.modules[__name__]):
        h.update(Path(str(module.__file__)).read_bytes())
    folder = files(lexicon_module.__name__)
    h.update(folder.joinpath("schema.json").read_bytes())
    for name in lexicon_module.lexicon_files():
        h.update(name.encode() + b"\0")
        h.update(folder.joinpath(f"{name}.toml").read_bytes())
    return h.hexdigest()


def default_index() -> Index:
    """The index over every lexicon of the package: read from the cache when this amber
    wrote it there before, else compiled (and written there for the next process)."""
    path = cache_path()
    index = read(path)
    if index is None:
        with _collector_paused():
            index = matcher.build_index(lexicon_module.load())
        write(index, path)
    return index


@contextmanager
def _collector_paused() -> Iterator[None]:
    """A million small objects made, all kept: the cyclic collector would walk them again
    and again while they are made (a third of the time) and find nothing to free."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def read(path: Path) -> Index | None:
    """The index kept at ``path``; ``None`` when there is none or it is not sound."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head, digest = data[: len(_MAGIC)], data[len(_MAGIC) : len(_MAGIC) + _DIGEST]
    payload = data[len(_MAGIC) + _DIGEST :]
    if head != _MAGIC or hashlib.sha256(payload).digest() != digest:
        return None
    try:
        with _collector_paused():
            return _thaw(marshal.loads(payload))
    except (ValueError, TypeError, KeyError, IndexError, EOFError):
        return None


def write(index: Index, path: Path) -> bool:
    """Keep ``index`` at ``path`` (atomically). Returns whether it was written."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            with _collector_paused():
                payload = marshal.dumps(_freeze(index), 4)
            out.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
        os.replace(tmp, path)
        tmp = None
        return True
    except (OSError, ValueError):  # ValueError: a lexicon value marshal cannot hold
        return False
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


# --------------------------------------------------------------------------- layout
# Patterns and slots become tuples numbered in a table; the lookups hold their numbers.


def _freeze(index: Index) -> tuple[Any, ...]:
    slot_ids: dict[int, int] = {}
    slots: list[tuple[Any, ...]] = []
    pattern_ids: dict[int, int] = {}
    patterns: list[tuple[Any, ...]] = []

    def slot_id(slot: Slot) -> int:
        n = slot_ids.get(id(slot))
        if n is None:
            n = slot_ids[id(slot)] = len(slots)
            slots.append((slot.kind.value, slot.exact, slot.stems, slot.inflected))
        return n

    def ids(found: tuple[Pattern, ...]) -> tuple[int, ...]:
        out = []
        for p in found:
            n = pattern_ids.get(id(p))
            if n is None:
                n = pattern_ids[id(p)] = len(patterns)
                patterns.append(
                    (
                        p.language,
                        p.cue.value,
                        p.weight,
                        tuple(slot_id(s) for s in p.slots),
                        p.source,
                        p.second,
                    )
                )
            out.append(n)
        return tuple(out)

    def lookups(table: Mapping[str, matcher.Lookup]) -> dict[str, Any]:
        return {
            key: (ids(plain), {w: ids(v) for w, v in pairs.items()})
            for key, (plain, pairs) in table.items()
        }

    exact, stems = lookups(index.exact), lookups(index.stems)
    inflected = {
        lang: {stem: ids(found) for stem, found in forms.items()}
        for lang, forms in index.inflected.items()
    }
    lexicons = tuple(
        {
            **{f.name: getattr(lex, f.name) for f in fields(Lexicon)},
            "entries": {cue.value: entries for cue, entries in lex.entries.items()},
            "coverage": lex.coverage.value,
            "provenance": dict(lex.provenance),
        }
        for lex in index.lexicons.values()
    )
    plain = {name: getattr(index, name) for name in _PLAIN}
    return (FORMAT, lexicons, tuple(slots), tuple(patterns), exact, stems, inflected, plain)


def _thaw(data: tuple[Any, ...]) -> Index:
    form, lexicons, slot_rows, pattern_rows, exact, stems, inflected, kept = data
    if form != FORMAT:
        raise ValueError(f"format {form}")
    kinds = {k.value: k for k in SlotKind}
    cues = {c.value: c for c in CueClass}
    slots = [
        Slot(kinds[k], exact_, stems_, inflected_) for k, exact_, stems_, inflected_ in slot_rows
    ]
    patterns = [
        Pattern(language, cues[cue], weight, tuple(slots[n] for n in slot_ids), source, second)
        for language, cue, weight, slot_ids, source, second in pattern_rows
    ]

    def found(numbers_: tuple[int, ...]) -> tuple[Pattern, ...]:
        return tuple(patterns[n] for n in numbers_)

    def lookups(table: dict[str, Any]) -> dict[str, matcher.Lookup]:
        return {
            key: (found(plain), {w: found(v) for w, v in pairs.items()})
            for key, (plain, pairs) in table.items()
        }

    lexes = tuple(
        Lexicon(
            **{
                **row,
                "entries": {cues[c]: entries for c, entries in row["entries"].items()},
                "coverage": Coverage(row["coverage"]),
            }
        )
        for row in lexicons
    )
    return Index(
        **kept,
        exact=lookups(exact),
        stems=lookups(stems),
        inflected={
            lang: {stem: found(v) for stem, v in forms.items()} for lang, forms in inflected.items()
        },
        lexicons={lex.language: lex for lex in lexes},
        coverage={lex.language: lex.coverage for lex in lexes if lex.language != "zxx"},
    )
