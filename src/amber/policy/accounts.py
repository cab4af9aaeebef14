"""The account policy: a policy's ``[accounts]`` table, strikes and what they recommend.

Every decided post is tied to its author (the post's ``author``, per client). Each of an
author's posts decided ``restrict`` or ``remove`` (or confirmed by a reviewer) is a
*strike*, weighted by its verdict (``strikes``) and decaying with its age: its weight
halves every ``half_life_days`` and it no longer counts after ``window_days``. A
reviewer's rejection, or a reversal on appeal, takes the strike back.

When a post that is itself a strike brings its author's strikes to a threshold, the
decision recommends that account action (``thresholds``: ``restrict_account``, then
``suspend_account``); a post flagged as a threat to life recommends ``threat_to_life``
at once, whatever the count. The recommendation is one of the decision's actions, so the
decision's webhook delivery carries it to the platform, which acts on the account.

The math is here and pure (``AccountPolicy``); ``amber.accounts`` reads the strikes from
the stored decisions (docs/accounts.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from amber.errors import PolicyError
from amber.policy.outcome import Reason, Verdict

#: The action a policy names for a threat to life (``decisions.THREAT_TO_LIFE``).
THREAT = "escalate:threat_to_life"
#: Review states that take a post's strike back: a reviewer's rejection, a reversal.
VOID_STATES = frozenset({"rejected", "reversed"})
#: The reason signal of an account's record (a recommendation, a repeat offender).
SIGNAL = "account"
KEYS = frozenset(
    {"enabled", "half_life_days", "window_days", "strikes", "thresholds", "threat_to_life"}
)
#: The longest window (days) a policy may set: ten years.
MAX_DAYS = 3653


def _default_strikes() -> dict[str, float]:
    return {"review": 0.0, "restrict": 1.0, "remove": 2.0}


def _default_thresholds() -> dict[str, float]:
    return {"restrict_account": 3.0, "suspend_account": 6.0}


@dataclass(frozen=True, slots=True)
class AccountStanding:
    """An author's record at one moment, from their other decided posts in the window."""

    author: str
    #: The decayed sum of their strikes.
    strikes: float
    #: How many of their posts count as strikes (weight above 0), and how many were
    #: flagged as a threat to life (neither taken back).
    posts: int = 0
    threats: int = 0

    def to_json(self) -> dict[str, Any]:
        """The standing as decisions' reasons and the account view describe it."""
        return {
            "author": self.author,
            "strikes": round(self.strikes, 3),
            "posts": self.posts,
            "threats": self.threats,
        }


@dataclass(frozen=True, slots=True)
class Recommendation:
    """An account action a decision recommends, and why."""

    action: str
    detail: str


@dataclass(frozen=True, slots=True)
class AccountPolicy:
    """A policy's ``[accounts]``: how strikes weigh and decay, and what they recommend."""

    #: False when the policy recommends no account action (no ``[accounts]`` table, or
    #: ``enabled = false``); the ``repeat_offender`` condition still reads strikes.
    enabled: bool = True
    #: A strike's weight halves every this many days (``None``: no decay).
    half_life_days: float | None = 90.0
    #: Strikes older than this many days no longer count.
    window_days: float = 365.0
    #: A post's strike weight by its verdict.
    strikes: Mapping[str, float] = field(default_factory=_default_strikes)
    #: The account action recommended at each number of strikes, weakest first.
    thresholds: Mapping[str, float] = field(default_factory=_default_thresholds)
    #: The account action a threat to life recommends at once (``None``: none).
    threat_to_life: str | None = "suspend_account"

    @property
    def window(self) -> timedelta:
        """How far back strikes count."""
        return timedelta(days=self.window_days)

    def weight(self, verdict: str, review_state: str) -> float:
        """A post's strike weight, undecayed: by its verdict; none when a reviewer
        rejected it or an appeal reversed it; a reviewer's confirmation counts at least as
        a ``restrict``."""
        if review_state in VOID_STATES:
            return 0.0
        weight = self.strikes.get(verdict, 0.0)
        if review_state == "confirmed":
            weight = max(weight, self.strikes.get(Verdict.restrict.value, 0.0))
        return weight

    def decayed(self, weight: float, age: timedelta) -> float:
        """``weight`` after ``age`` (none past the window; a future time is age 0)."""
        if weight <= 0 or age > self.window:
            return 0.0
        if self.half_life_days is None:
            return weight
        days = max(age.total_seconds(), 0.0) / 86400
        return float(weight * 0.5 ** (days / self.half_life_days))

    def reached(self, strikes: float) -> str | None:
        """The strongest account action whose threshold ``strikes`` reach, if any."""
        found = None
        for action, threshold in sorted(self.thresholds.items(), key=lambda kv: kv[1]):
            if strikes >= threshold - 1e-9:  # sums of decayed weights: not exact
                found = action
        return found

    def strongest(self, *actions: str | None) -> str | None:
        """The strongest of ``actions`` (by threshold; ``threat_to_life``'s counts as the
        strongest it names), ``None`` when none is given."""
        ranked = sorted(self.thresholds, key=lambda a: self.thresholds[a])
        given = [a for a in actions if a is not None]
        if not given:
            return None
        return max(given, key=lambda a: ranked.index(a) if a in ranked else len(ranked))

    def recommend(
        self, standing: AccountStanding | None, verdict: Verdict, actions: list[str]
    ) -> Recommendation | None:
        """The account action a decision of ``verdict`` with ``actions`` recommends for an
        author whose other posts stand at ``standing`` (``None``: no author), if any: only
        a post that is itself a strike or a threat to life recommends one."""
        if not self.enabled or standing is None:
            return None
        threat = THREAT in actions and self.threat_to_life is not None
        weight = self.weight(verdict.value, "none")
        if weight <= 0 and not threat:
            return None
        total = standing.strikes + weight
        by_count = self.reached(total) if weight > 0 else None
        action = self.strongest(by_count, self.threat_to_life if threat else None)
        if action is None:
            return None
        parts = []
        if threat and action == self.threat_to_life:
            parts.append("a threat to life recommends it at once")
        if by_count is not None:
            parts.append(
                f"{total:.2f} strikes with this post reach {by_count}'s threshold of "
                f"{self.thresholds[by_count]:g}"
            )
        detail = (
            f"author {standing.author!r}: " + "; ".join(parts) + f" ({standing.posts} earlier "
            f"{'strike' if standing.posts == 1 else 'strikes'} in {self.window_days:g} days)"
        )
        return Recommendation(action, detail)

    def reason(self, recommendation: Recommendation) -> Reason:
        """The reason a decision gives for the account action it recommends."""
        return Reason(
            signal=SIGNAL,
            rule="accounts",
            label=recommendation.action,
            detail=recommendation.detail,
        )


def parse_account_policy(
    table: object, source: str, check_action: Callable[[str, str], object]
) -> AccountPolicy:
    """A policy's ``[accounts]`` table. Without one the policy recommends no account
    action (``enabled`` false; strikes still weigh and decay as the defaults say, for the
    ``repeat_offender`` condition). ``check_action(name, key)`` checks that an account
    action is one the policy may name. Raises ``PolicyError`` naming the key of the first
    problem."""
    defaults = AccountPolicy()
    if table is None:
        return AccountPolicy(enabled=False)
    if not isinstance(table, dict):
        raise PolicyError("expected a table", path=source, key="accounts")
    unknown = set(table) - KEYS
    if unknown:
        raise PolicyError(
            f"unknown key; known: {', '.join(sorted(KEYS))}",
            path=source,
            key=f"accounts.{sorted(unknown)[0]}",
        )
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise PolicyError("expected true or false", path=source, key="accounts.enabled")
    half_life = table.get("half_life_days", defaults.half_life_days)
    if half_life is not False:
        half_life = _days(half_life, source, "accounts.half_life_days")
    window = _days(table.get("window_days", defaults.window_days), source, "accounts.window_days")
    strikes = _numbers(table, "strikes", source, defaults.strikes)
    for verdict in strikes:
        if verdict not in {v.value for v in Verdict}:
            raise PolicyError(
                "not a verdict; use allow, review, restrict or remove",
                path=source,
                key=f"accounts.strikes.{verdict}",
            )
    thresholds = _numbers(table, "thresholds", source, defaults.thresholds)
    for action in thresholds:
        check_action(action, f"accounts.thresholds.{action}")
    if any(t <= 0 for t in thresholds.values()):
        bad = next(a for a, t in thresholds.items() if t <= 0)
        raise PolicyError(
            "a threshold must be more than 0 strikes", path=source, key=f"accounts.thresholds.{bad}"
        )
    threat = table.get("threat_to_life", defaults.threat_to_life)
    if threat is False:
        threat = None
    elif not isinstance(threat, str) or threat not in thresholds:
        raise PolicyError(
            f"expected one of the account actions in accounts.thresholds "
            f"({', '.join(thresholds) or 'none'}) or false; got {threat!r}",
            path=source,
            key="accounts.threat_to_life",
        )
    return AccountPolicy(
        enabled=enabled,
        half_life_days=None if half_life is False else float(half_life),
        window_days=window,
        strikes={**{v.value: 0.0 for v in Verdict}, **strikes},
        thresholds=dict(sorted(thresholds.items(), key=lambda kv: kv[1])),
        threat_to_life=threat,
    )


def _days(value: object, source: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_DAYS:
        raise PolicyError(
            f"expected a number of days more than 0 and at most {MAX_DAYS}, got {value!r}",
            path=source,
            key=key,
        )
    return float(value)


def _numbers(
    table: Mapping[str, Any], key: str, source: str, default: Mapping[str, float]
) -> dict[str, float]:
    value = table.get(key)
    if value is None:
        return dict(default)
    if not isinstance(value, dict):
        raise PolicyError("expected a table of numbers", path=source, key=f"accounts.{key}")
    out = {}
    for name, number in value.items():
        if isinstance(number, bool) or not isinstance(number, int | float) or number < 0:
            raise PolicyError(
                f"expected a number >= 0, got {number!r}", path=source, key=f"accounts.{key}.{name}"
            )
        out[str(name)] = float(number)
    return out
