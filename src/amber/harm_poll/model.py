"""The values the harm-poll detector returns: ``Kind``, ``Cue`` and ``Assessment``.

A ``Cue`` is one piece of evidence found in a post; an ``Assessment`` is the score made
from all of them, the kind of post it points to, and the cues that raised or lowered it.
Cue names are stable lowercase strings (``docs/harm-poll.md`` lists them): reviewers
read them and the policy stores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from amber.harm_poll.language import LanguageGuess

#: Score at or above which an assessment fires, unless ``assess`` is given another.
DEFAULT_THRESHOLD = 0.5


class Kind(StrEnum):
    """What a firing post does with a person's life."""

    #: asks the audience to decide whether a person is harmed or killed
    vote = "vote"
    #: announces the outcome of such a vote
    announcement = "announcement"


@dataclass(frozen=True, slots=True)
class Cue:
    """One piece of evidence: a cue class, the words that showed it, their language.

    ``phrase`` is the text as it appeared in the post (original characters, before
    normalisation). ``weight`` is what the cue adds to the post's log-odds; dampeners
    carry negative weights. ``language`` is an ISO 639 code, ``zxx`` for emoji and
    for structure that belongs to no language (a poll's options).
    """

    name: str
    phrase: str
    language: str
    weight: float
    #: the words stand inside quotation marks (a caption quoted in a report) or are
    #: reported ("asked followers to vote")
    quoted: bool = False
    #: a choice put to the reader as a question ("Kill him or let him go?")
    asked: bool = False


@dataclass(frozen=True, slots=True)
class Assessment:
    """The detector's judgement of one post.

    ``score`` is in 0..1; ``kind`` is ``None`` unless the score reached ``threshold``;
    ``language`` is the post's language (ISO 639; ``None`` when it has no words) and
    ``guess`` how it was found and whether amber has a lexicon for it. ``cues`` are
    positive evidence, strongest first; ``dampeners`` the frames that lowered the score
    (news report, fiction, sport, idiom...), with the share of their weight that counted
    in ``dampening`` (frames count less in a vote addressed to the audience).
    ``steps`` say how the score was made, one short line each.
    """

    score: float
    kind: Kind | None
    language: str | None
    cues: tuple[Cue, ...]
    dampeners: tuple[Cue, ...]
    threshold: float = DEFAULT_THRESHOLD
    guess: LanguageGuess | None = None
    steps: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Everything ``explain`` says, as JSON: score, kind, language, cues, steps."""

        def cue(c: Cue) -> dict[str, Any]:
            return {
                "name": c.name,
                "phrase": c.phrase,
                "language": c.language,
                "weight": c.weight,
                "quoted": c.quoted,
                "asked": c.asked,
            }

        return {
            "score": self.score,
            "kind": None if self.kind is None else self.kind.value,
            "language": self.guess.to_json() if self.guess else {"code": self.language},
            "cues": [cue(c) for c in self.cues],
            "dampeners": [cue(c) for c in self.dampeners],
            "steps": list(self.steps),
        }

    @property
    def fired(self) -> bool:
        """True when the score reached the threshold used at assess time."""
        return self.score >= self.threshold

    def explain(self) -> str:
        """One line: verdict, score, language, then each cue as ``name 'phrase' (lang)``."""
        head = f"harm_poll {self.kind or 'none'} score={self.score:.2f}"
        head += f" lang={self.language or '-'}"
        if self.guess is not None and self.guess.code is not None:
            lexicon = self.guess.coverage.value if self.guess.coverage else "none"
            head += f" lexicon={lexicon}"
        parts = [head]
        if self.cues:
            parts.append("cues: " + "; ".join(_describe(c) for c in self.cues))
        else:
            parts.append("cues: none")
        if self.dampeners:
            parts.append("dampeners: " + "; ".join(_describe(c) for c in self.dampeners))
        return " | ".join(parts)


def _describe(cue: Cue) -> str:
    phrase = " ".join(cue.phrase.split())
    if len(phrase) > 60:
        phrase = phrase[:57] + "..."
    quoted = ", quoted" if cue.quoted else ""
    return f"{cue.name} {phrase!r} ({cue.language}, {cue.weight:+.1f}{quoted})"
