"""``harm_poll``: a post that asks its audience to decide whether a person is harmed.

The detector itself is ``amber.harm_poll``; this module is its signal-type face. It reads
a post's text and poll (scope ``post``), never media, and gives one value per post:
the kind (``vote``, ``announcement`` or ``none``) with the score and an explanation
(cues, phrases, language). Its values are scores, not fingerprints: they cannot be put
in a bank.
"""

from __future__ import annotations

from amber.errors import SignalValueError
from amber.harm_poll import Kind, assess
from amber.signals.base import Content, Role, Scope, SignalType, SignalValue

NONE = "none"


class HarmPollSignal(SignalType):
    """Scores a post for a vote on a person's life, or the announcement of its outcome."""

    name = "harm_poll"
    version = 1
    exact = True
    scope = Scope.post

    def compute(self, content: Content, *, role: Role = Role.query) -> list[SignalValue]:
        if not (content.text or content.question or content.options):
            return []
        result = assess(
            content.text,
            question=content.question,
            options=content.options,
            threshold=0.0,  # the policy's min_score decides; here every score is kept
        )
        kind = result.kind.value if result.kind is not None and result.score > 0 else NONE
        return [SignalValue(self.name, kind, score=result.score, detail=result.explain())]

    def validate(self, text: str) -> str:
        value = text.strip().lower()
        if value not in {k.value for k in Kind} | {NONE}:
            raise SignalValueError(
                "expected vote, announcement or none; harm_poll values are scores of posts "
                "and cannot be imported into a bank",
                signal_type=self.name,
                value=text,
            )
        return value

    def distance(self, a: str, b: str) -> int:
        return 0 if a == b else 1

    def examples(self) -> list[str]:
        return [Kind.vote.value, Kind.announcement.value, NONE]
