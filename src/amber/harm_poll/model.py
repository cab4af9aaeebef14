"""The values the harm-poll detector returns: ``Kind``, ``Cue`` and ``Assessment``.

A ``Cue`` is one piece of evidence found in a post; an ``Assessment`` is the score made
from all of them, the kind of post it points to, and the cues that raised or lowered it.
Cue names are stable lowercase strings (``docs/harm-poll.md`` lists them): reviewers
read them and the policy stores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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


@dataclass(frozen=True, slots=True)
class Assessment:
    """The detector's judgement of one post.

    ``score`` is in 0..1; ``kind`` is ``None`` unless the score reached ``threshold``;
    ``language`` is the language of the strongest cues (``None`` when nothing was found).
    ``cues`` are positive evidence, strongest first; ``dampeners`` the frames that
    lowered the score (news report, fiction, sport, idiom...).
    """

    score: float
    kind: Kind | None
    language: str | None
    cues: tuple[Cue, ...]
    dampeners: tuple[Cue, ...]
    threshold: float = DEFAULT_THRESHOLD

    @property
    def fired(self) -> bool:
        """True when the score reached the threshold used at assess time."""
        return self.score >= self.threshold

    def explain(self) -> str:
        """One line: verdict, score, language, then each cue as ``name 'phrase' (lang)``."""
        head = f"harm_poll {self.kind or 'none'} score={self.score:.2f}"
        head += f" lang={self.language or '-'}"
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
    return f"{cue.name} {phrase!r} ({cue.language}, {cue.weight:+.1f})"
