"""Lexicons: the words of each language that show a cue, kept as data.

One module per language (``en.py``, ``ar.py``...) defines ``LEXICON``, a ``Lexicon``
naming its ISO 639 code and, for each ``CueClass``, a tuple of entries. ``emoji.py``
holds the language-neutral emoji (language ``zxx``).

Entry syntax (each entry is one phrase; words separated by spaces):

- a word is written as it is normally spelled; it is normalised like post text (case,
  accents, letter variants, repeated letters), so ``Töten`` also matches ``toten``,
  ``TOETEN`` is a different word (list it too when people write it that way);
- ``{a|b|}`` inside a word: alternatives, ``kill{|s|ed|ing}``; an alternative that is
  empty on its own makes the word optional, ``{the|}``;
- ``*`` at the end of a word: any ending (a stem), ``ejecut*``; use explicit endings
  where a short stem would catch unrelated words;
- ``#``: a number, in digits or one of the language's ``numbers``; ``#year``: a
  four-digit year (1000-2029); ``~``: a gap of up to two words;
- ``@0.6`` at the end: the entry's weight relative to its class (default 1).

``harm_done`` lists harm in the past or passive (``was executed``, ``اعدام شد``): next to
any word of voting it makes an announcement even without a fixed outcome phrase.

Arabic-script languages list ``prefixes`` (clitics such as ``و``, ``ال``, ``ب``) that
may stand before any word, up to two stacked; ``target_suffixes`` /
``target_prefixes`` are pronoun affixes that, on a harm verb, name its victim
(``اقتلوه`` "kill him", ``بکشیمش``, ``بیکوژن``, ``mátenlo``). ``stopwords`` identify
the language and keep another language's cue from firing on them (German ``die``).

To add a language: copy a module of a language close to it, translate every class,
add the module's name to ``MODULES`` below, add labelled posts to
``tests/data/harm_poll/labelled.jsonl`` and run ``benchmarks/harm_poll_eval.py``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache

from amber.errors import InternalError

#: Lexicon modules in this package, in the order they are loaded.
MODULES = ("en", "ar", "fa", "ckb", "tr", "fr", "es", "ru", "ur", "de", "emoji")


class Role(StrEnum):
    """How a cue class acts on the score."""

    positive = "positive"
    helper = "helper"
    dampener = "dampener"


class CueClass(StrEnum):
    """The classes lexicon entries belong to; positive and dampener values are cue names."""

    # positive evidence
    harm_act = "harm_act"
    harm_done = "harm_done"
    death_word = "death_word"
    spare_act = "spare_act"
    life_word = "life_word"
    choice_pair = "choice_pair"
    target_person = "target_person"
    captive = "captive"
    audience_decides = "audience_decides"
    deadline = "deadline"
    outcome = "outcome"
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
    def role(self) -> Role:
        """Positive, helper or dampener."""
        if self in _HELPERS:
            return Role.helper
        if self in _DAMPENERS:
            return Role.dampener
        return Role.positive


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


@cache
def load() -> tuple[Lexicon, ...]:
    """All lexicons in ``MODULES``. Raises ``InternalError`` if one is malformed."""
    out: list[Lexicon] = []
    seen: set[str] = set()
    for name in MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        lexicon = getattr(module, "LEXICON", None)
        if not isinstance(lexicon, Lexicon):
            raise InternalError(f"lexicon module {name!r} has no LEXICON of type Lexicon")
        if lexicon.language in seen:
            raise InternalError(f"lexicon language {lexicon.language!r} is defined twice")
        seen.add(lexicon.language)
        out.append(_with_romanised(lexicon))
    return tuple(out)


def _with_romanised(lexicon: Lexicon) -> Lexicon:
    """The lexicon with its romanised entries (``romanised.py``) merged in."""
    from amber.harm_poll.lexicon import romanised

    extra = romanised.ENTRIES.get(lexicon.language)
    if not extra:
        return lexicon
    entries = dict(lexicon.entries)
    for cue, more in extra.items():
        entries[cue] = entries.get(cue, ()) + more
    stopwords = lexicon.stopwords + romanised.STOPWORDS.get(lexicon.language, ())
    return replace(lexicon, entries=entries, stopwords=stopwords)
