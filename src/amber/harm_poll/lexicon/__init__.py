"""Lexicons: the words of each language that show a cue, kept as data.

One TOML file per language (``en.toml``, ``ar.toml``...) in this folder, validated
against ``schema.json`` when loaded: its ISO 639 code, its coverage (``full``: every
cue class; ``core``: the words of fate only), the scripts it is written in, an optional
Snowball stemmer, its provenance and reviewers, and for each ``CueClass`` a list of
entries. ``emoji.toml`` holds the language-neutral emoji (language ``zxx``).
docs/harm-poll.md ("Lexicon files") is the reference for reviewers.

Entry syntax (each entry is one phrase; words separated by spaces):

- a word is written as it is normally spelled; it is normalised like post text (case,
  accents, letter variants, repeated letters), so ``Töten`` also matches ``toten``;
- ``{a|b|}`` inside a word: alternatives, ``kill{|s|ed|ing}``; an alternative that is
  empty on its own makes the word optional, ``{the|}``;
- ``*`` at the end of a word: any ending (a stem), ``ejecut*``;
- ``+`` at the end of a word: any inflection the language's Snowball stemmer folds to
  the same stem (``matar+`` matches ``matamos``, ``mataron``); needs ``stemmer``;
- ``$NAME``: the text of macro ``NAME`` (shared verb endings);
- ``#``: a number, in digits or one of the language's ``numbers``; ``#year``: a
  four-digit year (1000-2029); ``~``: a gap of up to two words;
- ``@0.6`` at the end: the entry's weight relative to its class (default 1).

``[words]`` lists ``stopwords`` (they identify the language and keep another language's
cue from firing on them), ``prefixes`` (clitics that may stand before any word, up to
two stacked) and ``target_suffixes`` / ``target_prefixes`` (pronoun affixes that, on a
harm verb, name its victim: ``اقتلوه``, ``mátenlo``). ``[romanised]`` holds entries of
the language written in Latin letters (Arabizi, Finglish, Roman Urdu...), attributed to
the language like the others.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from amber.errors import InternalError, UserError

#: Languages loaded first, in this order (the rest follow by code, emoji last): when two
#: languages find the same cue on the same words, the earlier one names it.
FIRST = ("en", "ar", "fa", "ckb", "tr", "fr", "es", "ru", "ur", "de")
EMOJI = "emoji"


class Effect(StrEnum):
    """How a cue class acts on the score."""

    positive = "positive"
    helper = "helper"
    dampener = "dampener"


class CueClass(StrEnum):
    """The classes lexicon entries belong to; positive and dampener values are cue names."""

    # positive evidence
    harm_act = "harm_act"
    harm_done = "harm_done"
    euphemism = "euphemism"
    death_word = "death_word"
    spare_act = "spare_act"
    life_word = "life_word"
    choice_pair = "choice_pair"
    target_person = "target_person"
    target_named = "target_named"
    captive = "captive"
    audience_decides = "audience_decides"
    deadline = "deadline"
    outcome = "outcome"
    finality = "finality"
    poll_structure = "poll_structure"
    # helpers: found, but only count through structure
    pronoun = "pronoun"
    alternative = "alternative"
    reaction = "reaction"
    link = "link"
    negation = "negation"
    # dampeners: frames in which a harm act is not a vote on a life
    news_report = "news_report"
    fiction_game = "fiction_game"
    sports = "sports"
    idiom = "idiom"
    animal_pest = "animal_pest"
    debate = "debate"
    history = "history"
    petition = "petition"
    condemnation = "condemnation"
    humor = "humor"
    hyperbole = "hyperbole"

    @property
    def effect(self) -> Effect:
        """Positive, helper or dampener."""
        if self in _HELPERS:
            return Effect.helper
        if self in _DAMPENERS:
            return Effect.dampener
        return Effect.positive


_HELPERS = frozenset(
    {
        CueClass.pronoun,
        CueClass.alternative,
        CueClass.reaction,
        CueClass.link,
        CueClass.negation,
    }
)
_DAMPENERS = frozenset(
    {
        CueClass.news_report,
        CueClass.fiction_game,
        CueClass.sports,
        CueClass.idiom,
        CueClass.animal_pest,
        CueClass.debate,
        CueClass.history,
        CueClass.petition,
        CueClass.condemnation,
        CueClass.humor,
        CueClass.hyperbole,
    }
)


#: Dampeners that frame a post (report it, mock it, condemn it) rather than change what
#: its words are about: they never veto a vote addressed to the audience on their own,
#: and they settle a post that only talks about such a vote. The others change the
#: target (a game character, an animal, the death penalty as an institution, a brother
#: who ate the last slice) and count in full.
FRAMES = frozenset({CueClass.news_report, CueClass.humor, CueClass.condemnation})


class Coverage(StrEnum):
    """How much of a language a lexicon covers."""

    #: every cue class, written for the language
    full = "full"
    #: the words of fate only: harm, death, sparing, life, vote, "or", time units
    core = "core"
    #: language-neutral symbols
    emoji = "emoji"


@dataclass(frozen=True, slots=True)
class Lexicon:
    """The cue words of one language (see the module docstring for entry syntax)."""

    language: str
    name: str
    entries: Mapping[CueClass, tuple[str, ...]]
    prefixes: tuple[str, ...] = ()
    target_suffixes: tuple[str, ...] = ()
    target_prefixes: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    stopwords: tuple[str, ...] = field(default=())
    coverage: Coverage = Coverage.full
    scripts: tuple[str, ...] = ()
    stemmer: str | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""


_MACRO = re.compile(r"\$([A-Z][A-Z0-9_]*)")


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema every lexicon file must meet (``schema.json``)."""
    data: dict[str, Any] = json.loads(
        files(__name__).joinpath("schema.json").read_text(encoding="utf-8")
    )
    return data


def parse(text: str, *, source: str) -> Lexicon:
    """Parse and validate one lexicon file's TOML.

    Raises ``UserError`` naming the file and the key of the first problem (a schema
    violation, an unknown macro).
    """
    import jsonschema

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"lexicon {source}: invalid TOML: {exc}") from None
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        path = [str(p) for p in first.absolute_path]
        if "propertyNames" in first.schema_path:  # a key that is not allowed: name it
            path.append(str(first.instance))
        where = ".".join(path) or "(top level)"
        raise UserError(f"lexicon {source}, key {where}: {first.message}")
    macros: dict[str, str] = data.get("macros", {})

    def expand(entry: str, where: str) -> str:
        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in macros:
                raise UserError(f"lexicon {source}, key {where}: unknown macro ${m.group(1)}")
            return macros[m.group(1)]

        return _MACRO.sub(sub, entry)

    entries: dict[CueClass, tuple[str, ...]] = {}
    for table in ("entries", "romanised"):
        for name, values in data.get(table, {}).items():
            cue = CueClass(name)
            more = tuple(expand(v, f"{table}.{name}[{i}]") for i, v in enumerate(values))
            entries[cue] = entries.get(cue, ()) + more
    words: dict[str, list[str]] = data.get("words", {})
    stemmer = data.get("stemmer")
    if stemmer is None and any("+" in e for v in entries.values() for e in v):
        plus = next(e for v in entries.values() for e in v if "+" in e)
        raise UserError(
            f"lexicon {source}: entry {plus!r} asks for inflections (+) but no stemmer is set"
        )
    return Lexicon(
        language=data["language"],
        name=data["name"],
        entries=entries,
        prefixes=tuple(words.get("prefixes", ())),
        target_suffixes=tuple(words.get("target_suffixes", ())),
        target_prefixes=tuple(words.get("target_prefixes", ())),
        numbers=tuple(words.get("numbers", ())),
        stopwords=tuple(words.get("stopwords", ())),
        coverage=Coverage(data["coverage"]),
        scripts=tuple(data["scripts"]),
        stemmer=stemmer,
        provenance=data["provenance"],
        source=source,
    )


def lexicon_files() -> list[str]:
    """File names of the package's lexicons, in load order."""
    names = sorted(
        p.name[: -len(".toml")] for p in files(__name__).iterdir() if p.name.endswith(".toml")
    )
    first = [n for n in FIRST if n in names]
    rest = [n for n in names if n not in FIRST and n != EMOJI]
    return [*first, *rest, *([EMOJI] if EMOJI in names else [])]


@cache
def load() -> tuple[Lexicon, ...]:
    """Every lexicon of the package. Raises ``InternalError`` if one is malformed."""
    out: list[Lexicon] = []
    seen: dict[str, str] = {}
    for name in lexicon_files():
        text = files(__name__).joinpath(f"{name}.toml").read_text(encoding="utf-8")
        try:
            lexicon = parse(text, source=f"{name}.toml")
        except UserError as exc:
            raise InternalError(str(exc)) from None
        if lexicon.language in seen:
            raise InternalError(
                f"lexicon {name}.toml: language {lexicon.language!r} is already defined by "
                f"{seen[lexicon.language]}"
            )
        seen[lexicon.language] = f"{name}.toml"
        out.append(lexicon)
    return tuple(out)


def check_file(path: Path) -> Lexicon:
    """Validate a lexicon file (a reviewer's edit) and compile every entry.

    Raises ``UserError`` naming the file, key or entry at fault.
    """
    from amber.harm_poll.matcher import build_index

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read lexicon {path}: {exc}") from None
    lexicon = parse(text, source=str(path))
    try:
        build_index([lexicon])
    except InternalError as exc:
        raise UserError(str(exc)) from None
    expected = "emoji" if lexicon.language == "zxx" else lexicon.language
    if path.stem != expected:
        raise UserError(
            f"lexicon {path}: a file for language {lexicon.language!r} must be named "
            f"{expected}.toml (amber finds each language by its file)"
        )
    return lexicon
