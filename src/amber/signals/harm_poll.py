"""``harm_poll``: a post that asks its audience to decide whether a person is harmed.

The detector itself is ``amber.harm_poll``; this module is its signal-type face. It reads
a post's text and poll (it reads ``post``), never media, and gives one value per post:
the kind (``vote``, ``announcement`` or ``none``) with the score and an explanation
(cues, phrases, language). Its values are scores, not fingerprints: they cannot be put
in a bank.
"""

from __future__ import annotations

from collections.abc import Sequence

from amber.errors import SignalValueError
from amber.harm_poll import Assessment, Kind, assess
from amber.policy import Findings, Outcome, Policy
from amber.signals.base import Content, Reads, Role, SignalType, SignalValue

NONE = "none"


class HarmPollSignal(SignalType):
    """Scores a post for a vote on a person's life, or the announcement of its outcome."""

    name = "harm_poll"
    version = 1
    exact = True
    reads = Reads.post

    def compute(self, content: Content, *, role: Role = Role.query) -> list[SignalValue]:
        if not (content.text or content.question or content.options):
            return []
        result = assess(
            content.text,
            question=content.question,
            options=content.options,
            threshold=0.0,  # the policy's min_score decides; here every score is kept
        )
        return [self.value(result)]

    def value(self, result: Assessment) -> SignalValue:
        """The signal value of one assessment: its kind, score and explanation."""
        kind = result.kind.value if result.kind is not None and result.score > 0 else NONE
        return SignalValue(self.name, kind, score=result.score, detail=result.explain())

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


def explain_text(
    text: str | None,
    *,
    question: str | None = None,
    options: Sequence[str] = (),
    policy: Policy,
) -> tuple[Assessment, Outcome]:
    """Assess a post's words and say what ``policy`` would decide on them alone (no
    media, no earlier posts): the ``amber harm-poll explain`` command."""
    result = assess(text, question=question, options=options, threshold=0.0)
    value = HarmPollSignal().value(result)
    findings = Findings(signals=[value], has_poll=question is not None or bool(options))
    return result, policy.decide(findings)
