"""Finding lexicon entries in a post's tokens.

Entries (``lexicon`` module docstring gives their syntax) are compiled once into
``Pattern``s of ``Slot``s and indexed by their first word, exact or stem. A post's
words are looked up one by one: an Arabic-script word is also tried without each
clitic prefix its language allows (``وال``, ``ب``...). Matches then go through
``resolve``: a longer dampener phrase swallows the positive cue inside it (``kill
time`` is an idiom, not a harm act) and a longer positive phrase swallows a dampener
(``according to your votes`` is an outcome, not a news report); the same cue found in
two languages on the same words is kept once, in the post's main language.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache, lru_cache
from typing import Any

from amber.errors import InternalError
from amber.harm_poll.lexicon import Coverage, CueClass, Effect, Lexicon
from amber.harm_poll.normalize import Term, TermKind, is_arabic_script, normalise, tokenize

#: Patterns found by one word: those to try, and those whose second word is fixed, by it.
Lookup = tuple[tuple["Pattern", ...], dict[str, tuple["Pattern", ...]]]
#: A word-to-stem function of one language (Snowball, through PyStemmer).
Stem = Callable[[str], str]

#: A word as looked up: (form, clitic removed to get it).
Forms = tuple[tuple[str, str], ...]
#: Language score from which a post's main language is taken as clear.
CLEAR_MAIN = 2.0
#: Most words whose lookup forms are kept across posts before the cache starts over.
FORMS_CACHE = 200_000
#: Index key of patterns that start with a number (``#``, ``#year``).
NUMBER_KEY = "\x00number"
#: Pseudo-clitic of a word whose umlaut was written as two letters (``toeten`` for
#: ``töten``): the folded form is tried only for the languages in ``UMLAUT_LANGUAGES``.
UMLAUT = "\x00umlaut"
UMLAUT_LANGUAGES = frozenset({"de"})
_UMLAUT_PAIR = re.compile(r"(?<=[a-z])(ae|oe|ue)|^(ae|oe|ue)(?=[a-z])")


def _umlaut(m: re.Match[str]) -> str:
    return m.group()[0]


class SlotKind(StrEnum):
    """What one position of a pattern accepts."""

    word = "word"
    number = "number"
    year = "year"
    gap = "gap"


@dataclass(frozen=True, slots=True)
class Slot:
    """One position of a pattern: exact words and stems, a number, or a short gap."""

    kind: SlotKind
    exact: frozenset[str] = frozenset()
    stems: tuple[str, ...] = ()
    #: Snowball stems of words written with ``+``: any inflection of them.
    inflected: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Pattern:
    """One compiled lexicon entry."""

    language: str
    cue: CueClass
    weight: float
    slots: tuple[Slot, ...]
    source: str
    #: the exact words the second slot accepts, when that is all it accepts: a quick test
    #: that rules out most candidates before the whole pattern is tried
    second: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """A pattern found at content tokens ``start..end`` (end exclusive).

    ``form`` is the first word as matched (clitics removed) and ``remainder`` what
    followed the stem in it: pronoun suffixes are read from these.
    """

    pattern: Pattern
    start: int
    end: int
    form: str
    remainder: str

    @property
    def cue(self) -> CueClass:
        return self.pattern.cue

    @property
    def language(self) -> str:
        return self.pattern.language


_WEIGHT = re.compile(r"\s*@(\d+(?:\.\d+)?)\s*$")
_BRACE = re.compile(r"\{([^{}]*)\}")


def _expand(word: str) -> list[str]:
    """Brace alternatives: ``kill{|s|ed}`` -> ``kill kills killed``."""
    m = _BRACE.search(word)
    if m is None:
        return [word]
    head, tail = word[: m.start()], word[m.end() :]
    return [x for alt in m.group(1).split("|") for x in _expand(head + alt + tail)]


@cache
def _content(text: str) -> tuple[str, ...]:
    """The content words of ``text``. Cached while an index is built: the lexicons write
    each word about three times (``build_index`` clears the cache when it is done)."""
    return tuple(t.text for t in tokenize(normalise(text)) if t.kind is not TermKind.punct)


def _split(body: str) -> list[str]:
    """Split an entry into written words at spaces outside braces."""
    words: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch.isspace() and depth == 0:
            if current:
                words.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current:
        words.append("".join(current))
    return words


def compile_entry(
    entry: str, *, language: str, cue: CueClass, stem: Stem | None = None
) -> list[Pattern]:
    """Compile one entry into patterns (several when it has optional words).

    ``stem`` is the language's stemmer, needed by words written with ``+``. Raises
    ``InternalError`` naming the entry when it cannot be compiled.
    """
    if entry.count("{") != entry.count("}"):
        raise InternalError(f"lexicon {language} {cue}: entry {entry!r} has unbalanced braces")
    weight = 1.0
    body = entry
    m = _WEIGHT.search(body)
    if m is not None:
        weight = float(m.group(1))
        body = body[: m.start()]
    variants: list[list[Slot]] = [[]]
    for raw in _split(body):
        options = _compile_word(raw, entry, stem)
        variants = [v + list(opt) for v in variants for opt in options]
    out: list[Pattern] = []
    for slots in variants:
        if not slots or slots[0].kind is SlotKind.gap or slots[-1].kind is SlotKind.gap:
            raise InternalError(f"lexicon {language} {cue}: entry {entry!r} is empty or gapped")
        second = None
        if len(slots) > 1:
            nxt = slots[1]
            if nxt.kind is SlotKind.word and not nxt.stems and not nxt.inflected:
                second = nxt.exact
        out.append(Pattern(language, cue, weight, tuple(slots), entry, second))
    return out


def _compile_word(raw: str, entry: str, stem_word: Stem | None) -> list[tuple[Slot, ...]]:
    """The slot sequences one written word can stand for (``()`` when optional).

    Alternatives of one word go into one slot; an alternative of several words
    (``{this one|him}``) becomes its own sequence; pure punctuation is skipped.
    """
    if raw == "~":
        return [(Slot(SlotKind.gap),)]
    if raw == "#":
        return [(Slot(SlotKind.number),)]
    if raw == "#year":
        return [(Slot(SlotKind.year),)]
    stem = raw.endswith("*") and len(raw) > 1
    inflect = raw.endswith("+") and len(raw) > 1
    if inflect and stem_word is None:
        raise InternalError(f"lexicon entry {entry!r}: {raw!r} needs the language's stemmer")
    alternatives = _expand(raw[:-1] if stem or inflect else raw)
    optional = "" in alternatives
    exact: set[str] = set()
    stems: set[str] = set()
    inflected: set[str] = set()
    sequences: list[tuple[Slot, ...]] = []
    for alt in alternatives:
        if not alt:
            continue
        words = _content(alt)
        if len(words) == 1:
            (stems if stem else exact).add(words[0])
            if inflect and stem_word is not None:
                inflected.add(stem_word(words[0]))
        elif len(words) > 1 and not stem and not inflect:
            sequences.append(tuple(Slot(SlotKind.word, frozenset({w})) for w in words))
        elif not words and len(alternatives) == 1:
            return [()]
        else:
            raise InternalError(f"lexicon entry {entry!r}: word {raw!r} normalises to {words}")
    if exact or stems:
        slot = Slot(
            SlotKind.word,
            frozenset(exact),
            tuple(sorted(stems, key=len, reverse=True)),
            frozenset(inflected),
        )
        sequences.insert(0, (slot,))
    if optional:
        sequences.append(())
    return sequences


@dataclass(frozen=True, slots=True)
class Index:
    """Every compiled pattern, indexed by the first word; per-language word lists."""

    #: by first word (or its stem): the patterns, and those whose second word is fixed
    #: by that second word (looked up by both words, so most are never tried)
    exact: dict[str, Lookup]
    stems: dict[str, Lookup]
    #: the stem lengths worth trying for a word, by its first two letters, longest first
    stem_lengths_by_start: dict[str, tuple[int, ...]]
    clitics: dict[str, frozenset[str]]
    all_clitics: tuple[str, ...]
    numbers: dict[str, frozenset[str]]
    stopwords: dict[str, frozenset[str]]
    stopword_languages: dict[str, tuple[str, ...]]
    target_suffixes: dict[str, tuple[str, ...]]
    target_prefixes: dict[str, tuple[str, ...]]
    languages: tuple[str, ...]
    #: language -> Snowball stem -> patterns whose first word is inflected (``+``)
    inflected: dict[str, dict[str, tuple[Pattern, ...]]]
    #: language -> its Snowball algorithm
    stemmers: dict[str, str]
    lexicons: dict[str, Lexicon]
    #: each language's lexicon coverage (emoji, language ``zxx``, are no language)
    coverage: dict[str, Coverage]
    #: the forms each word is looked up as (``_Matcher.forms``), kept across posts
    forms_cache: dict[str, Forms] = field(default_factory=dict, compare=False)


def _norm_words(words: Iterable[str]) -> frozenset[str]:
    return frozenset(w for word in words for w in _content(word))


def build_index(lexicons: Sequence[Lexicon]) -> Index:
    """Compile every entry of ``lexicons``. Raises ``InternalError`` on a bad entry."""
    exact: dict[str, list[Pattern]] = {}
    stems: dict[str, list[Pattern]] = {}
    exact_pairs: dict[str, dict[str, list[Pattern]]] = {}
    stem_pairs: dict[str, dict[str, list[Pattern]]] = {}
    inflected: dict[str, dict[str, list[Pattern]]] = {}
    clitics: dict[str, frozenset[str]] = {}
    for lex in lexicons:
        stem = None if lex.stemmer is None else stemmer(lex.stemmer)
        for cue, entries in lex.entries.items():
            for entry in entries:
                for pattern in compile_entry(entry, language=lex.language, cue=cue, stem=stem):
                    first = pattern.slots[0]
                    for form in first.inflected:
                        inflected.setdefault(lex.language, {}).setdefault(form, []).append(pattern)
                    if first.kind is not SlotKind.word:
                        keys = [NUMBER_KEY]
                        if first.kind is SlotKind.number:
                            keys.extend(_norm_words(lex.numbers))
                        for key in keys:
                            if pattern.second is None:
                                exact.setdefault(key, []).append(pattern)
                            else:
                                for word in pattern.second:
                                    exact_pairs.setdefault(key, {}).setdefault(word, []).append(
                                        pattern
                                    )
                        continue
                    if pattern.second is None:
                        for form in first.exact:
                            exact.setdefault(form, []).append(pattern)
                        for prefix in first.stems:
                            stems.setdefault(prefix, []).append(pattern)
                        continue
                    for form in first.exact:
                        for word in pattern.second:
                            exact_pairs.setdefault(form, {}).setdefault(word, []).append(pattern)
                    for prefix in first.stems:
                        for word in pattern.second:
                            stem_pairs.setdefault(prefix, {}).setdefault(word, []).append(pattern)
        single = [normalise(p).text for p in lex.prefixes]
        stacked = single + [a + b for a in single for b in single]
        if lex.language in UMLAUT_LANGUAGES:
            stacked.append(UMLAUT)
        clitics[lex.language] = frozenset(stacked)
    all_clitics = sorted(set().union(*clitics.values()) - {UMLAUT}, key=len, reverse=True)
    stopwords = {lex.language: _norm_words(lex.stopwords) for lex in lexicons}
    by_word: dict[str, list[str]] = {}
    for language, words in stopwords.items():
        for w in words:
            by_word.setdefault(w, []).append(language)
    index = Index(
        exact=_lookups(exact, exact_pairs),
        stems=_lookups(stems, stem_pairs),
        stem_lengths_by_start=_lengths_by_start(stems.keys() | stem_pairs.keys()),
        clitics=clitics,
        all_clitics=tuple(all_clitics),
        numbers={lex.language: _norm_words(lex.numbers) for lex in lexicons},
        stopwords=stopwords,
        stopword_languages={w: tuple(langs) for w, langs in by_word.items()},
        target_suffixes={
            lex.language: tuple(normalise(s).text for s in lex.target_suffixes) for lex in lexicons
        },
        target_prefixes={
            lex.language: tuple(normalise(s).text for s in lex.target_prefixes) for lex in lexicons
        },
        languages=tuple(lex.language for lex in lexicons),
        inflected={
            lang: {k: tuple(v) for k, v in forms.items()} for lang, forms in inflected.items()
        },
        stemmers={lex.language: lex.stemmer for lex in lexicons if lex.stemmer is not None},
        lexicons={lex.language: lex for lex in lexicons},
        coverage={lex.language: lex.coverage for lex in lexicons if lex.language != "zxx"},
    )
    _content.cache_clear()
    return index


def _lengths_by_start(keys: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """Stem lengths by the stem's first two letters (one-letter stems under that letter),
    longest first."""
    out: dict[str, set[int]] = {}
    for key in keys:
        out.setdefault(key[:2], set()).add(len(key))
    return {k: tuple(sorted(v, reverse=True)) for k, v in out.items()}


def _lookups(
    plain: dict[str, list[Pattern]], pairs: dict[str, dict[str, list[Pattern]]]
) -> dict[str, Lookup]:
    return {
        key: (
            tuple(plain.get(key, ())),
            {w: tuple(v) for w, v in pairs.get(key, {}).items()},
        )
        for key in plain.keys() | pairs.keys()
    }


@cache
def stemmer(algorithm: str) -> Stem:
    """The Snowball stemmer ``algorithm`` (PyStemmer) as a cached function of one word."""
    import Stemmer

    obj: Any = Stemmer.Stemmer(algorithm)
    stem_word: Stem = lru_cache(maxsize=1 << 16)(obj.stemWord)
    return stem_word


@cache
def default_index() -> Index:
    """The index over every lexicon in the package, built on first use (or read from the
    user cache, where the first process to build it keeps it: ``compiled`` module)."""
    from amber.harm_poll import compiled

    return compiled.default_index()


class _Matcher:
    """Matches patterns against one post's content tokens."""

    def __init__(
        self,
        index: Index,
        content: Sequence[Term],
        segments: Sequence[int],
        stem_languages: Collection[str],
    ) -> None:
        self.index = index
        self.content = content
        self.segments = segments
        self._forms = index.forms_cache
        if len(self._forms) > FORMS_CACHE:
            self._forms.clear()
        self.token_forms = [self.forms(t.text) for t in content]
        self.stem_languages = [
            (lang, stemmer(index.stemmers[lang]))
            for lang in stem_languages
            if lang in index.stemmers and lang in index.inflected
        ]

    def forms(self, text: str) -> Forms:
        """The word itself, then the word without each clitic prefix that fits."""
        cached = self._forms.get(text)
        if cached is not None:
            return cached
        out = [(text, "")]
        if is_arabic_script(text):
            for clitic in self.index.all_clitics:
                if text.startswith(clitic) and len(text) - len(clitic) >= 2:
                    out.append((text[len(clitic) :], clitic))
        elif _UMLAUT_PAIR.search(text):
            out.append((_UMLAUT_PAIR.sub(_umlaut, text), UMLAUT))
        result = tuple(out)
        self._forms[text] = result
        return result

    def slot(self, slot: Slot, j: int, language: str) -> tuple[str, str] | None:
        """Does content token ``j`` fill ``slot``? Returns (form, remainder)."""
        tok = self.content[j]
        if slot.kind is SlotKind.year:
            if tok.kind is TermKind.number and len(tok.text) == 4 and "1000" <= tok.text < "2030":
                return tok.text, ""
            return None
        if slot.kind is SlotKind.number:
            if tok.kind is TermKind.number or tok.text in self.index.numbers[language]:
                return tok.text, ""
            return None
        allowed = self.index.clitics[language]
        for form, clitic in self.token_forms[j]:
            if clitic and clitic not in allowed:
                continue
            if form in slot.exact:
                return form, ""
            for stem in slot.stems:
                if form.startswith(stem):
                    return form, form[len(stem) :]
            if slot.inflected and language in self.index.stemmers:
                stemmed = stemmer(self.index.stemmers[language])(form)
                if stemmed in slot.inflected:
                    return form, form[len(stemmed) :] if form.startswith(stemmed) else ""
        return None

    def rest(self, slots: tuple[Slot, ...], k: int, j: int, language: str) -> int | None:
        """End of a match of ``slots[k:]`` starting at content token ``j``, if any.

        All tokens of a match lie in the segment of its first token (``j - 1``).
        """
        content, segments = self.content, self.segments
        segment = segments[j - 1]
        allowed = self.index.clitics[language]
        while k < len(slots):
            slot = slots[k]
            if slot.kind is SlotKind.gap:
                for skip in range(3):
                    if skip and (j + skip > len(content) or segments[j + skip - 1] != segment):
                        break
                    end = self.rest(slots, k + 1, j + skip, language)
                    if end is not None:
                        return end
                return None
            if j >= len(content) or segments[j] != segment:
                return None
            if slot.kind is SlotKind.word and not slot.stems and not slot.inflected:
                exact = slot.exact
                if not any(
                    form in exact and (not clitic or clitic in allowed)
                    for form, clitic in self.token_forms[j]
                ):
                    return None
            elif self.slot(slot, j, language) is None:
                return None
            k += 1
            j += 1
        return j

    def find(self) -> list[Hit]:
        """Every pattern occurrence, before overlaps are resolved.

        The first word of each candidate is matched as it is looked up (the form that
        found it, what followed its stem), as ``slot`` would: for each form in order,
        exact words, then the longest stem, then Snowball stems. Patterns whose second
        word is fixed are looked up by both words, so most never need trying.
        """
        index = self.index
        clitics = index.clitics
        exact, stems = index.exact, index.stems
        by_start = index.stem_lengths_by_start
        content, segments = self.content, self.segments
        found: list[Hit] = []
        for i, tok in enumerate(content):
            firsts: dict[int, tuple[Pattern, str, str]] = {}
            nxt = i + 1
            following: tuple[str, ...] = ()
            if nxt < len(content) and segments[nxt] == segments[i]:
                following = tuple(f for f, _ in self.token_forms[nxt])

            if tok.kind is TermKind.number:
                numbered = exact.get(NUMBER_KEY)
                if numbered is not None:
                    plain, pairs = numbered
                    candidates = list(plain)
                    for word in following:
                        candidates.extend(pairs.get(word, ()))
                    for p in candidates:
                        if id(p) not in firsts and self.slot(p.slots[0], i, p.language):
                            firsts[id(p)] = (p, tok.text, "")
            for form, clitic in self.token_forms[i]:
                hit = exact.get(form)
                if hit is not None:
                    _take_lookup(firsts, clitics, hit, following, form, "", clitic)
                size = len(form)
                lengths = by_start.get(form[:2], ())
                if size > 1:
                    lengths = (*lengths, *by_start.get(form[:1], ()))
                for n in lengths:
                    if n <= size:
                        hit = stems.get(form[:n])
                        if hit is not None:
                            _take_lookup(firsts, clitics, hit, following, form, form[n:], clitic)
                if tok.kind is TermKind.word:
                    for lang, stem_word in self.stem_languages:
                        stemmed = stem_word(form)
                        rest = form[len(stemmed) :] if form.startswith(stemmed) else ""
                        _take(
                            firsts,
                            clitics,
                            index.inflected[lang].get(stemmed, ()),
                            form,
                            rest,
                            clitic,
                        )
            for p, form, remainder in firsts.values():
                if len(p.slots) == 1:
                    found.append(Hit(p, i, nxt, form, remainder))
                    continue
                end = self.rest(p.slots, 1, nxt, p.language)
                if end is not None:
                    found.append(Hit(p, i, end, form, remainder))
        return found


def _take_lookup(
    firsts: dict[int, tuple[Pattern, str, str]],
    clitics: dict[str, frozenset[str]],
    hit: Lookup,
    following: tuple[str, ...],
    form: str,
    rest: str,
    clitic: str,
) -> None:
    """Record the candidates one word found, and those its next word completes."""
    plain, pairs = hit
    if plain:
        _take(firsts, clitics, plain, form, rest, clitic)
    if pairs:
        for word in following:
            found = pairs.get(word)
            if found:
                _take(firsts, clitics, found, form, rest, clitic)


def _take(
    firsts: dict[int, tuple[Pattern, str, str]],
    clitics: dict[str, frozenset[str]],
    patterns: Iterable[Pattern],
    form: str,
    rest: str,
    clitic: str,
) -> None:
    """Record each new candidate whose language allows the clitic taken off its word."""
    for p in patterns:
        if id(p) not in firsts and (not clitic or clitic in clitics[p.language]):
            firsts[id(p)] = (p, form, rest)


def find_matches(
    index: Index,
    content: Sequence[Term],
    segments: Sequence[int],
    *,
    stem_languages: Collection[str] = (),
) -> list[Hit]:
    """Every pattern occurrence in ``content`` (tokens of one segment never mix).

    Inflected entries (``+``) are looked up in ``stem_languages`` only: stemming every
    word in every language would cost more than all the rest.
    """
    return _Matcher(index, content, segments, stem_languages).find()


def stopword_scores(index: Index, content: Sequence[Term]) -> dict[str, float]:
    """How many of each language's stopwords a post has."""
    scores = dict.fromkeys(index.languages, 0.0)
    for tok in content:
        for language in index.stopword_languages.get(tok.text, ()):
            scores[language] += 1.0
    return scores


def language_scores(
    index: Index,
    content: Sequence[Term],
    matches: Sequence[Hit],
    *,
    stopwords: dict[str, float] | None = None,
) -> dict[str, float]:
    """How much each language is present: stopwords seen plus cue words matched."""
    scores = dict(stopword_scores(index, content) if stopwords is None else stopwords)
    for m in matches:
        if m.cue.effect is not Effect.helper:
            scores[m.language] += 0.5
    return scores


def resolve(
    matches: Sequence[Hit],
    index: Index,
    content: Sequence[Term],
    scores: dict[str, float],
) -> list[Hit]:
    """Drop matches swallowed by longer ones, duplicates, and stray foreign words.

    With a clear main language (``scores``), a cue made only of its stopwords in
    another language is dropped (German ``die`` is not English "die"), and so are
    dampeners of a language with less than half the main one's score (German
    ``Held`` "hero" does not dampen English "held").
    """
    main = max(scores, key=lambda k: scores[k]) if scores else None
    if main is not None and scores[main] <= 0:
        main = None
    clear = main is not None and scores[main] >= CLEAR_MAIN
    kept: list[Hit] = []
    occupied: dict[int, list[Hit]] = {}
    ordered = sorted(
        matches,
        key=lambda m: (-(m.end - m.start), m.language != main, m.start),
    )
    main_stops = index.stopwords.get(main, frozenset()) if main else frozenset()
    for m in ordered:
        if (
            main is not None
            and m.language not in (main, "zxx")
            and all(content[j].text in main_stops for j in range(m.start, m.end))
        ):
            continue
        if (
            clear
            and m.cue.effect is Effect.dampener
            and m.language not in (main, "zxx")
            and scores.get(m.language, 0.0) * 2 < scores[main or ""]
        ):
            continue
        if any(_swallows(k, m) for j in range(m.start, m.end) for k in occupied.get(j, ())):
            continue
        kept.append(m)
        for j in range(m.start, m.end):
            occupied.setdefault(j, []).append(m)
    kept.sort(key=lambda m: (m.start, m.end))
    return kept


def _swallows(big: Hit, small: Hit) -> bool:
    """Does kept match ``big`` (at least as long) hide ``small``?

    The same cue overlapping is one finding. Otherwise only a strictly longer phrase
    hides another, and only across the dampener/positive line (a dampener also hides
    helpers inside it): positive cues of different classes on the same words all count.
    """
    if big.end <= small.start or small.end <= big.start:
        return False
    if big.cue is small.cue:
        return True
    if (big.end - big.start) <= (small.end - small.start):
        return False
    big_effect, small_effect = big.cue.effect, small.cue.effect
    if big_effect is Effect.dampener:
        return small_effect is not Effect.dampener
    return big_effect is Effect.positive and small_effect is Effect.dampener
