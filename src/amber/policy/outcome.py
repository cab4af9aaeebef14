"""What a policy decides: the verdict, the reasons that gave it, and the actions."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    """What happens to a post, in increasing strength."""

    allow = "allow"
    review = "review"
    restrict = "restrict"
    remove = "remove"

    @property
    def rank(self) -> int:
        return list(Verdict).index(self)


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a rule fired: the signal, and where it matched or how it scored."""

    signal: str
    rule: str
    bank: str | None = None
    label: str | None = None
    entry: int | None = None
    distance: int | None = None
    quality: int | None = None
    score: float | None = None
    detail: str | None = None
    media: str | None = None
    #: A match that involves a video: where it lies in time (``amber.matching.Match.video``).
    video: dict[str, Any] | None = None
    #: A local-feature match: its inliers and where it lies in the post's image and in the
    #: banked photo (``amber.matching.Match.region``).
    region: dict[str, Any] | None = None
    #: A user's report (``user_report``): its ``id``, ``reporter`` and ``received_at``
    #: (``amber.policy.reports.UserReport``).
    report: dict[str, Any] | None = None
    #: How amber came to look again, when not at the post's own scan: ``"retro-hunt"``
    #: (``amber.retrohunt``: a bank entry added after the post matched it).
    found_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The reason as the JSONL contract writes it (absent fields left out)."""
        out: dict[str, Any] = {"signal": self.signal}
        for key in (
            "bank",
            "label",
            "entry",
            "distance",
            "quality",
            "score",
            "detail",
            "media",
            "video",
            "region",
            "report",
            "rule",
            "found_by",
        ):
            value = getattr(self, key)
            if value is not None:
                out[key] = round(value, 3) if isinstance(value, float) else value
        return out


@dataclass(frozen=True, slots=True)
class Outcome:
    """A policy's answer for one post."""

    verdict: Verdict
    reasons: list[Reason]
    actions: list[str]
    rules: list[str] = field(default_factory=list)

    def to_json(self, *, post_id: str) -> dict[str, Any]:
        """The decision as the JSONL contract, the API and the stores write it:
        post_id, verdict, reasons, actions (the rules that fired are kept apart)."""
        return {
            "post_id": post_id,
            "verdict": self.verdict.value,
            "reasons": [r.to_json() for r in self.reasons],
            "actions": list(self.actions),
        }
