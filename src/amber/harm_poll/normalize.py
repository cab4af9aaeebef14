"""Normalising post text for matching, keeping a map back to the original characters.

The detector never matches on the raw text. Every post (and every lexicon word, by
the same function) is normalised first:

1. Per character: invisible characters are dropped (zero-width space and joiners,
   bidi marks, soft hyphen, variation selectors, emoji skin tones, Arabic tatweel,
   Armenian marks written inside a word);
   NFKC; case folding; combining marks are stripped (Latin accents, Arabic tashkeel,
   the Cyrillic breve); Arabic-script letter variants are folded (alef forms to ``ا``,
   alef maqsura and Persian/Urdu/Kurdish yeh to ``ي``, Persian kaf to ``ك``, ta marbuta
   and the Urdu/Kurdish heh forms to ``ه``, Kurdish ``ڕ ڵ ۆ`` to ``ر ل و``); Eastern
   digits become ASCII; typographic quotes and dashes become plain ones.
2. Letters spelled apart become one word: ``k i l l``, ``k.i.l.l``, ``E X E C U T E``.
3. Inside a word, leetspeak and look-alike letters become letters of the word's
   script: ``k1ll``, ``3xecute``, ``d34th``, ``уб1ть``, a Latin ``K`` in a Cyrillic word;
   the Arabizi digits ``2`` and ``9`` read as ``a`` and ``q`` (``na2tolo``).
4. A letter repeated for emphasis becomes one: ``kiiill`` and ``kill`` both give
   ``kil``; ``اقتلووووه`` gives ``اقتلوه``. Lexicon words go through the same step, so
   they are written normally.

``Normalised.original`` turns a span of normalised text back into the characters the
post really had, so cues quote the post, not its normal form.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple

#: Characters dropped outright: zero-width, joiners, bidi controls, soft hyphen,
#: variation selectors, combining keycap, Arabic tatweel, and the Armenian emphasis,
#: exclamation and question marks, written over a vowel inside the word (սպանե՞նք).
_DROP = frozenset(
    "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u061c\u200e\u200f\u202a\u202b\u202c"
    "\u202d\u202e\u2066\u2067\u2068\u2069\ufe0e\ufe0f\u20e3\u0640\u055b\u055c\u055e"
)

#: Letter variants folded after NFKC, case folding and mark stripping.
_VARIANTS = {
    # Arabic-script letters
    "ٱ": "ا",
    "ى": "ي",
    "ی": "ي",
    "ې": "ي",
    "ێ": "ي",
    "ے": "ي",
    "ۍ": "ي",
    "ک": "ك",
    "ڪ": "ك",
    "ة": "ه",
    "ۃ": "ه",
    "ە": "ه",
    "ہ": "ه",
    "ھ": "ه",
    "ڕ": "ر",
    "ڵ": "ل",
    "ۆ": "و",
    "ۇ": "و",
    "ۈ": "و",
    "ۋ": "و",
    "،": ",",
    "؛": ";",
    "؟": "?",
    "۔": ".",
    "٪": "%",
    # Latin letters without a decomposition
    "ı": "i",
    "ł": "l",
    "ø": "o",
    "đ": "d",
    # typography
    "’": "'",
    "‘": "'",
    "‛": "'",
    "`": "'",
    "´": "'",
    "ʼ": "'",
    "“": '"',
    "”": '"',
    "„": '"',
    "‟": '"',
    "«": '"',
    "»": '"',
    "–": "-",
    "—": "-",
    "―": "-",
    "‒": "-",
    "−": "-",
    "➡": "→",
    "⇒": "→",
    "⟶": "→",
    "\r": "\n",
    "\u2028": "\n",
    "\u2029": "\n",
}

_LEET_LATIN = {
    "0": "o",
    "1": "i",
    "2": "a",
    "3": "e",
    "4": "a",
    "5": "s",
    "7": "t",
    "9": "q",
    "@": "a",
    "$": "s",
    "!": "i",
    "|": "l",
    "+": "t",
    "€": "e",
}
_LEET_CYRILLIC = {"0": "о", "1": "и", "3": "з", "4": "ч", "6": "б", "@": "а"}
_LAT_TO_CYR = {
    "a": "а",
    "b": "в",
    "c": "с",
    "e": "е",
    "h": "н",
    "k": "к",
    "m": "м",
    "o": "о",
    "p": "р",
    "t": "т",
    "x": "х",
    "y": "у",
}
_CYR_TO_LAT = {
    "а": "a",
    "в": "b",
    "с": "c",
    "е": "e",
    "н": "h",
    "к": "k",
    "м": "m",
    "о": "o",
    "р": "p",
    "т": "t",
    "х": "x",
    "у": "y",
    "і": "i",
    "ј": "j",
    "ѕ": "s",
    "ԁ": "d",
}

_GLYPH = r"(?:[^\W_]|[@$!|])"
#: three or more single glyphs, each followed by the same one separator: k.i.l.l, k i l l
_SPACED = re.compile(rf"(?<![\w@$!|]){_GLYPH}([ .\-_*·•/]){_GLYPH}(?:\1{_GLYPH})+(?![\w@$!|])")
_WORD = re.compile(r"[\w@$!|+€]+")
_SUSPECT = re.compile(
    r"[^\W\d_][\d@$!|+€]|[\d@$!|+€][^\W\d_]|[a-z][а-яё]|[а-яё][a-z]|[a-z][іјѕԁ]|[іјѕԁ][a-z]"
)
_UNIT = re.compile(
    r"\d+(?:[.,]\d+)?(?:h|hrs?|hours?|m|mins?|minutes?|s|secs?|d|days?|dk|st|nd|rd|th|am|pm"
    r"|k|x|%)"
)
_REPEAT = re.compile(r"([^\W\d_])\1+")
_LATIN = frozenset("abcdefghijklmnopqrstuvwxyz")
_CYRILLIC = frozenset("абвгдежзийклмнопрстуфхцчшщъыьэюяёіјѕԁєїў")


#: Scripts whose vowel signs and viramas are combining marks that spell the word (Indic,
#: Myanmar, Thai, Lao, Khmer, Tibetan): kept, unlike accents and Arabic tashkeel.
_SPELLING_MARKS = re.compile(
    r"[\u0900-\u0DFF\u0E00-\u0EFF\u0F00-\u0FFF\u1000-\u109F\u1780-\u17FF\uA9E0-\uA9FF"
    r"\uAA60-\uAA7F]"
)


def _is_diacritic(c: str) -> bool:
    """A combining mark that decorates a letter (accent, tashkeel), not one that spells."""
    return not _SPELLING_MARKS.match(c)


@lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    """Fold one character: drop, NFKC, case-fold, strip marks, fold variants."""
    if ch in _DROP or "\U0001f3fb" <= ch <= "\U0001f3ff":
        return ""
    if ch == "\n" or ch in _VARIANTS:
        return _VARIANTS.get(ch, ch)
    if ch.isspace():
        return " "
    folded = unicodedata.normalize("NFKC", ch).casefold()
    out: list[str] = []
    for c in unicodedata.normalize("NFD", folded):
        if c in _DROP or (unicodedata.category(c) == "Mn" and _is_diacritic(c)):
            continue
        c = _VARIANTS.get(c, c)
        if c.isdecimal() and not c.isascii():
            c = str(unicodedata.decimal(c))
        out.append(c)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Normalised:
    """Normalised text and, for each of its characters, the span it came from."""

    source: str
    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def original(self, start: int, end: int) -> str:
        """The original characters behind ``text[start:end]``."""
        if start >= end:
            return ""
        return self.source[self.starts[start] : self.ends[end - 1]]


class _Builder:
    """Normalised characters with their source spans, edited pass by pass."""

    __slots__ = ("chars", "ends", "source", "starts")

    def __init__(self, source: str) -> None:
        self.source = source
        folded_all = list(map(_fold_char, source))
        if all(len(f) == 1 for f in folded_all):  # the usual case: one character each
            self.chars: list[str] = folded_all
            self.starts: list[int] = list(range(len(source)))
            self.ends: list[int] = list(range(1, len(source) + 1))
            return
        self.chars = []
        self.starts = []
        self.ends = []
        for i, folded in enumerate(folded_all):
            if not folded:
                if self.ends:
                    self.ends[-1] = i + 1
                continue
            for c in folded:
                self.chars.append(c)
                self.starts.append(i)
                self.ends.append(i + 1)

    def text(self) -> str:
        return "".join(self.chars)

    def apply(self, edits: dict[int, str]) -> None:
        """Replace characters by index (``""`` deletes, extending the previous span)."""
        chars: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        for i, c in enumerate(self.chars):
            new = edits.get(i, c)
            if not new:
                if ends:
                    ends[-1] = max(ends[-1], self.ends[i])
                continue
            chars.append(new)
            starts.append(self.starts[i])
            ends.append(self.ends[i])
        self.chars, self.starts, self.ends = chars, starts, ends

    def freeze(self) -> Normalised:
        return Normalised(self.source, self.text(), tuple(self.starts), tuple(self.ends))


def normalise(text: str) -> Normalised:
    """Normalise ``text`` for matching (see the module docstring for the steps)."""
    b = _Builder(text)
    s = b.text()
    if _SPACED.search(s):
        _join_spaced(b, s)
        s = b.text()
    if _SUSPECT.search(s):
        _fix_words(b, s)
        s = b.text()
    if _REPEAT.search(s):
        edits: dict[int, str] = {}
        for m in _REPEAT.finditer(s):
            for j in range(m.start() + 1, m.end()):
                edits[j] = ""
        b.apply(edits)
    return b.freeze()


def normal_form(text: str) -> str:
    """Just the normalised text (lexicon words are stored in this form)."""
    return normalise(text).text


def _join_spaced(b: _Builder, s: str) -> None:
    """Join letters spelled apart, keeping a lower-case word after capitals apart."""
    edits: dict[int, str] = {}
    for m in _SPACED.finditer(s):
        glyphs = list(range(m.start(), m.end(), 2))
        first = b.source[b.starts[glyphs[0]]]
        if first.isupper():
            for n, g in enumerate(glyphs):
                if b.source[b.starts[g]].islower():
                    glyphs = glyphs[:n]
                    break
        if len(glyphs) < 3 or not any(s[g].isalpha() for g in glyphs):
            continue
        for g in glyphs[:-1]:
            edits[g + 1] = ""
    if edits:
        b.apply(edits)


def _fix_words(b: _Builder, s: str) -> None:
    """Leetspeak and look-alike letters inside words, in the word's majority script."""
    edits: dict[int, str] = {}
    for m in _WORD.finditer(s):
        word = m.group()
        if not _SUSPECT.search(word) or _UNIT.fullmatch(word):
            continue
        latin = sum(c in _LATIN for c in word)
        cyrillic = sum(c in _CYRILLIC for c in word)
        if latin == 0 and cyrillic == 0:
            continue
        cyr = cyrillic > latin
        leet = _LEET_CYRILLIC if cyr else _LEET_LATIN
        look = _LAT_TO_CYR if cyr else _CYR_TO_LAT
        mixed = latin > 0 and cyrillic > 0
        out = list(word)
        n = len(word)
        for j, c in enumerate(word):
            if mixed and c in look:
                out[j] = look[c]
            elif c in leet and _in_word(word, j, n):
                new = leet[c]
                if c == "1" and not cyr and j > 0 and (out[j - 1] == "i" or word[j - 1] == "1"):
                    new = "l"
                out[j] = new
        for j, c in enumerate(out):
            if c != word[j]:
                edits[m.start() + j] = c
    if edits:
        b.apply(edits)


def _in_word(word: str, j: int, n: int) -> bool:
    """Is the leet character at ``j`` part of a word rather than a number or mark?"""
    c = word[j]
    if c.isdigit():
        lo = j
        while lo > 0 and word[lo - 1].isdigit():
            lo -= 1
        hi = j
        while hi < n - 1 and word[hi + 1].isdigit():
            hi += 1
        if hi - lo >= 3:
            return False
        return (lo > 0 and word[lo - 1].isalpha()) or (hi < n - 1 and word[hi + 1].isalpha())
    return 0 < j < n - 1 and word[j - 1].isalnum() and word[j + 1].isalnum()


class TermKind(StrEnum):
    """What a token is made of."""

    word = "word"
    number = "number"
    emoji = "emoji"
    punct = "punct"


class Term(NamedTuple):
    """One token of normalised text: its kind, its text and its span there."""

    kind: TermKind
    text: str
    start: int
    end: int


#: Letters and the marks that spell words in scripts whose vowels are combining marks.
_LETTER = (
    r"(?:[^\W\d_]|[\u0900-\u0963\u0971-\u0DF3\u0E00-\u0E4E\u0E80-\u0EDF\u0F00-\u0F3F"
    r"\u0F71-\u0FBC\u1000-\u103F\u1050-\u109D\u1780-\u17D3\uA9E0-\uA9FE\uAA60-\uAA7F])"
)
_TOKEN = re.compile(
    r"(?P<number>\d+(?:[.,:]\d+)*)"
    rf"|(?P<word>{_LETTER}+)"
    r"|(?P<punct>->|=>|→|\n|[^\w\s\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff])"
    r"|(?P<emoji>[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff])"
)
_KINDS = {kind.value: kind for kind in TermKind}
#: Persian verb prefixes sometimes written as a separate word: joined to the verb.
_JOIN_NEXT = frozenset({"مي", "نمي"})


def is_arabic_script(text: str) -> bool:
    """True when ``text`` starts with an Arabic-script letter."""
    return bool(text) and "\u0600" <= text[0] <= "\u06ff"


#: Scripts written without spaces between words. Myanmar is split into syllables (a
#: syllable starts at a consonant or independent vowel that is not stacked or killed);
#: Thai, Lao, Khmer, Han and kana into characters with their marks. Lexicon entries are
#: split the same way, so a word of several syllables is a phrase of several tokens.
_MYANMAR = re.compile(r"[\u1000-\u109F]")
_SYLLABLE_START = re.compile(
    r"(?<!\u1039)[\u1000-\u102A\u103F\u104C-\u104F](?![\u1036\u1037]*[\u103A\u1039])"
)
_UNSPACED = re.compile(
    r"[\u0E00-\u0EFF\u1780-\u17FF\u3040-\u30FF\u3400-\u4DBF\u4E00-\u9FFF\uF900-\uFAFF]"
)
_CLUSTER = re.compile(
    r"[\u0E00-\u0EFF\u1780-\u17FF\u3040-\u30FF\u3400-\u4DBF\u4E00-\u9FFF\uF900-\uFAFF]"
    r"[\u0E31\u0E34-\u0E3A\u0E47-\u0E4E\u0EB1\u0EB4-\u0EBC\u0EC8-\u0ECD\u17B6-\u17D3]*"
    r"|[^\u0E00-\u0EFF\u1780-\u17FF\u3040-\u30FF\u3400-\u4DBF\u4E00-\u9FFF\uF900-\uFAFF]+"
)


def _split_unspaced(tok: Term) -> list[Term]:
    """Syllables (Myanmar) or characters (Thai, Lao, Khmer, Han, kana) of one word."""
    text = tok.text
    if _MYANMAR.search(text):
        cuts = [m.start() for m in _SYLLABLE_START.finditer(text) if m.start() > 0]
        bounds = [0, *cuts, len(text)]
        pieces = [(a, b) for a, b in itertools.pairwise(bounds) if b > a]
    elif _UNSPACED.search(text):
        pieces = [(m.start(), m.end()) for m in _CLUSTER.finditer(text)]
    else:
        return [tok]
    return [Term(TermKind.word, text[a:b], tok.start + a, tok.start + b) for a, b in pieces]


def tokenize(norm: Normalised) -> list[Term]:
    """Split normalised text into words, numbers, emoji and punctuation."""
    tokens: list[Term] = []
    text = norm.text
    for m in _TOKEN.finditer(text):
        kind = _KINDS[m.lastgroup or "punct"]
        tok = Term(kind, m.group(), m.start(), m.end())
        if kind is TermKind.word and ord(tok.text[0]) >= 0x0E00:
            tokens.extend(_split_unspaced(tok))
        else:
            tokens.append(tok)
    if any(t.text in _JOIN_NEXT for t in tokens):
        tokens = _join_prefixes(tokens)
    return tokens


def _join_prefixes(tokens: list[Term]) -> list[Term]:
    out: list[Term] = []
    skip = False
    for i, tok in enumerate(tokens):
        if skip:
            skip = False
            continue
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if (
            tok.text in _JOIN_NEXT
            and nxt is not None
            and nxt.kind is TermKind.word
            and is_arabic_script(nxt.text)
        ):
            out.append(Term(TermKind.word, tok.text + nxt.text, tok.start, nxt.end))
            skip = True
        else:
            out.append(tok)
    return out
