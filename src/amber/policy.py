"""Policy: from what the signals and banks found to a verdict, actions and reasons.

A policy is a TOML file (``default_policy.toml`` is the built-in one, documented in
docs/policy.md). Rules each test one condition; every rule that fires adds its reasons,
and the post gets the strongest verdict among them (allow < review < restrict < remove)
with that verdict's actions plus any extra actions of the rules that fired. A new kind of
condition is one new class registered in ``CONDITIONS``.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from importlib.resources import files
from pathlib import Path
from typing import Any

from amber.errors import PolicyError
from amber.matching import Match
from amber.signals.base import SignalValue


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
            "rule",
        ):
            value = getattr(self, key)
            if value is not None:
                out[key] = round(value, 3) if isinstance(value, float) else value
        return out


@dataclass(frozen=True, slots=True)
class Earlier:
    """An earlier decision related to the post: the post it replies to, the same
    author's, or one whose photo is the same (``media_distance``: PDQ bits)."""

    post_id: str
    reasons: Sequence[Mapping[str, Any]]
    same_author: bool
    replied_to: bool
    created_at: datetime | None = None
    media_distance: int | None = None
    scanned_at: datetime | None = None

    def links(self) -> set[str]:
        """How it is related: ``reply``, ``author``, ``media``."""
        out = set()
        if self.replied_to:
            out.add("reply")
        if self.same_author:
            out.add("author")
        if self.media_distance is not None:
            out.add("media")
        return out

    def describe(self) -> str:
        """``replies to 'p1'``, ``same author as 'p1'``, ``same photo as 'p1' (4 bits)``."""
        if self.replied_to:
            return f"replies to {self.post_id!r}"
        if self.same_author:
            return f"same author as {self.post_id!r}"
        return f"same photo as {self.post_id!r} ({self.media_distance} bits)"


@dataclass(frozen=True, slots=True)
class Findings:
    """Everything known about one post when the policy runs.

    ``signals`` holds the post's own detector values (``harm_poll``…); ``earlier`` the
    related decisions already made, newest first.
    """

    matches: Sequence[Match] = ()
    media_paths: Sequence[str] = ()
    #: (path, reason) of each media file that could not be read or decoded.
    unreadable: Sequence[tuple[str, str]] = ()
    signals: Sequence[SignalValue] = ()
    has_poll: bool = False
    earlier: Sequence[Earlier] = ()
    #: when the post says it was created, and when it is being decided
    created_at: datetime | None = None
    now: datetime | None = None

    def hours_since(self, earlier: Earlier) -> float | None:
        """Hours from ``earlier`` to this post: by the posts' own times when both have
        one, else by when each was scanned. ``None`` when unknown."""
        if self.created_at is not None and earlier.created_at is not None:
            return (self.created_at - earlier.created_at).total_seconds() / 3600
        if self.now is not None and earlier.scanned_at is not None:
            return (self.now - earlier.scanned_at).total_seconds() / 3600
        return None


@dataclass(frozen=True, slots=True)
class Outcome:
    """A policy's answer for one post."""

    verdict: Verdict
    reasons: list[Reason]
    actions: list[str]
    rules: list[str] = field(default_factory=list)


class Condition:
    """One kind of rule condition. Subclasses set ``name`` and implement ``fire``."""

    name: str = ""

    def fire(self, findings: Findings, rule: str) -> list[tuple[Reason, Verdict | None]]:
        """Reasons this condition found, each with the verdict it implies (None: the rule's)."""
        raise NotImplementedError

    def check(self, signal_types: Collection[str]) -> None:
        """Raise ``PolicyError`` if the condition names a signal type that does not exist."""

    def links(self, findings: Findings) -> frozenset[str]:
        """How earlier posts could matter to this condition for this post (``reply``,
        ``author``, ``media``): the engine looks up only those."""
        del findings
        return frozenset()


def _str_list(table: Mapping[str, Any], key: str, where: str, path: str) -> list[str] | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError("expected a list of strings", path=path, key=f"{where}.{key}")
    return list(value)


class BankMatch(Condition):
    """Fires for each bank match, optionally limited to signal types, banks or labels."""

    name = "bank_match"
    keys = frozenset({"signals", "banks", "labels", "max_distance"})

    def __init__(self, table: Mapping[str, Any], where: str, path: str) -> None:
        self.where, self.path = where, path
        self.signals = _str_list(table, "signals", where, path)
        self.banks = _str_list(table, "banks", where, path)
        self.labels = _str_list(table, "labels", where, path)
        max_distance = table.get("max_distance")
        if max_distance is not None and (not isinstance(max_distance, int) or max_distance < 0):
            raise PolicyError(
                "expected a whole number >= 0", path=path, key=f"{where}.max_distance"
            )
        self.max_distance = max_distance

    def check(self, signal_types: Collection[str]) -> None:
        unknown = sorted(set(self.signals or ()) - set(signal_types))
        if unknown:
            raise PolicyError(
                f"unknown signal type {unknown[0]!r}; known: {', '.join(sorted(signal_types))}",
                path=self.path,
                key=f"{self.where}.signals",
            )

    def fire(self, findings: Findings, rule: str) -> list[tuple[Reason, Verdict | None]]:
        out: list[tuple[Reason, Verdict | None]] = []
        for m in findings.matches:
            if self.signals is not None and m.signal_type not in self.signals:
                continue
            if self.banks is not None and m.bank not in self.banks:
                continue
            if self.labels is not None and m.label not in self.labels:
                continue
            if self.max_distance is not None and m.distance > self.max_distance:
                continue
            detail = f"entry {m.entry_source!r}"
            if m.query_variant != "original" or m.entry_variant != "original":
                detail += f" via {m.query_variant} -> {m.entry_variant}"
            media = findings.media_paths[m.media] if m.media < len(findings.media_paths) else None
            reason = Reason(
                signal=m.signal_type,
                rule=rule,
                bank=m.bank,
                label=m.label,
                entry=m.entry_id,
                distance=m.distance,
                quality=m.quality,
                detail=detail,
                media=media,
            )
            out.append((reason, Verdict(m.action)))
        return out


class MediaUnreadable(Condition):
    """Fires for each media file that could not be read or decoded (corrupt, truncated,
    not an image, over the limits): what amber could not look at, a person should."""

    name = "media_unreadable"
    keys: frozenset[str] = frozenset()

    def __init__(self, table: Mapping[str, Any], where: str, path: str) -> None:
        del table, where, path  # no options

    def fire(self, findings: Findings, rule: str) -> list[tuple[Reason, Verdict | None]]:
        return [
            (
                Reason(signal="media", rule=rule, detail=f"could not be read: {why}", media=path),
                None,
            )
            for path, why in findings.unreadable
        ]


def _signal_name(table: Mapping[str, Any], where: str, path: str) -> str:
    signal = table.get("signal")
    if not isinstance(signal, str) or not signal:
        raise PolicyError("expected the name of a signal type", path=path, key=f"{where}.signal")
    return signal


def _score(table: Mapping[str, Any], key: str, where: str, path: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise PolicyError(
            f"expected a number from 0 to 1, got {value!r}", path=path, key=f"{where}.{key}"
        )
    return float(value)


def _bool(table: Mapping[str, Any], key: str, where: str, path: str) -> bool | None:
    value = table.get(key)
    if value is not None and not isinstance(value, bool):
        raise PolicyError("expected true or false", path=path, key=f"{where}.{key}")
    return value


class SignalScore(Condition):
    """Fires when a post-level detector scores at least ``min_score``.

    ``signal`` names the detector (e.g. ``harm_poll``); ``values`` limits the kinds that
    count (``vote``, ``announcement``); ``max_score`` (exclusive) makes a tier below a
    stronger rule; ``poll = true`` or ``false`` limits the rule to posts with or without
    a poll.
    """

    name = "signal_score"
    keys = frozenset({"signal", "values", "min_score", "max_score", "poll"})

    def __init__(self, table: Mapping[str, Any], where: str, path: str) -> None:
        self.signal = _signal_name(table, where, path)
        self.values = _str_list(table, "values", where, path)
        self.min_score = _score(table, "min_score", where, path, 0.5)
        self.max_score = (
            None if "max_score" not in table else _score(table, "max_score", where, path, 1.0)
        )
        if self.max_score is not None and self.max_score <= self.min_score:
            raise PolicyError(
                f"max_score {self.max_score} must be above min_score {self.min_score}",
                path=path,
                key=f"{where}.max_score",
            )
        self.poll = _bool(table, "poll", where, path)

    def found(self, findings: Findings) -> list[SignalValue]:
        """The post's values of this signal that meet the condition."""
        if self.poll is not None and findings.has_poll != self.poll:
            return []
        return [
            v
            for v in findings.signals
            if v.signal_type == self.signal
            and (self.values is None or v.value in self.values)
            and v.score is not None
            and v.score >= self.min_score
            and (self.max_score is None or v.score < self.max_score)
        ]

    def fire(self, findings: Findings, rule: str) -> list[tuple[Reason, Verdict | None]]:
        return [
            (
                Reason(
                    signal=v.signal_type, rule=rule, label=v.value, score=v.score, detail=v.detail
                ),
                None,
            )
            for v in self.found(findings)
        ]


#: How an earlier post may be related to this one.
LINKS = ("reply", "author", "media")


class _Related:
    """The options shared by conditions on earlier related posts: ``earlier_values`` (kinds
    of the signal the earlier post fired), ``related`` (``reply``, ``author``, ``media``:
    the same photo) and ``within_hours`` (how long before this post)."""

    keys = frozenset({"earlier_values", "related", "within_hours"})

    def __init__(self, table: Mapping[str, Any], where: str, path: str) -> None:
        self.earlier_values = _str_list(table, "earlier_values", where, path)
        related = _str_list(table, "related", where, path)
        if related is not None and (not related or set(related) - set(LINKS)):
            raise PolicyError(
                f"expected some of {', '.join(LINKS)}", path=path, key=f"{where}.related"
            )
        self.related = frozenset(related or ("reply", "author"))
        hours = table.get("within_hours")
        if hours is not None and (
            isinstance(hours, bool) or not isinstance(hours, int | float) or hours <= 0
        ):
            raise PolicyError(
                f"expected a number of hours > 0, got {hours!r}",
                path=path,
                key=f"{where}.within_hours",
            )
        self.within_hours: float | None = None if hours is None else float(hours)

    def earlier(self, findings: Findings, signal: str) -> tuple[Earlier, Mapping[str, Any]] | None:
        """The first earlier related post (and its reason) that fired ``signal``."""
        for earlier in findings.earlier:
            if not earlier.links() & self.related:
                continue
            if self.within_hours is not None:
                age = findings.hours_since(earlier)
                if age is None or age > self.within_hours:
                    continue
            for reason in earlier.reasons:
                if reason.get("signal") != signal:
                    continue
                if self.earlier_values is not None and reason.get("label") not in (
                    self.earlier_values
                ):
                    continue
                return earlier, reason
        return None


class AfterSignal(SignalScore):
    """Fires when the post scores as in ``signal_score`` AND an earlier related post fired
    ``earlier_values`` of the same signal: e.g. a result announcement from the author of
    a harm poll, in reply to it, or showing the same photo. ``min_score`` may then be
    lower than alone.
    """

    name = "after_signal"
    keys = SignalScore.keys | _Related.keys

    def __init__(self, table: Mapping[str, Any], where: str, path: str) -> None:
        super().__init__(table, where, path)
        self.context = _Related(table, where, path)

    def links(self, findings: Findings) -> frozenset[str]:
        return self.context.related if self.found(findings) else frozenset()

    def fire(self, findings: Findings, rule: str) -> list[tuple[Reason, Verdict | None]]:
        found = self.found(findings)
        if not found:
            return []
        hit = self.context.earlier(findings, self.signal)
        if hit is None:
            return []
        earlier, reason = hit
        return [
            (
                Reason(
                    signal=v.signal_type,
                    rule=rule,
                    label=v.value,
                    score=v.score,
                    detail=f"{earlier.describe()} ({reason.get('label')}); {v.detail}",
                ),
                None,
            )
            for v in found
        ]


class FollowsSignal(Condition):
    """Fires for ANY post related to an earlier post that fired ``earlier_values`` of
    ``signal`` (by ``related`` links, ``within_hours``), whatever this post says and in
    whatever language: the follow-up to a harm poll (a photo, "done", a re-post) is
    worth a person's look even when no word of it is understood.
    """

    name = "follows_signal"
    keys = frozenset({"signal"}) | _Related.keys

    def __init__(self, table: Mapping[str, Any], where: str, path: str) -> None:
        self.signal = _signal_name(table, where, path)
        self.context = _Related(table, where, path)

    def links(self, findings: Findings) -> frozenset[str]:
        return self.context.related

    def fire(self, findings: Findings, rule: str) -> list[tuple[Reason, Verdict | None]]:
        hit = self.context.earlier(findings, self.signal)
        if hit is None:
            return []
        earlier, reason = hit
        detail = f"follows a harm poll ({reason.get('label')}): {earlier.describe()}"
        return [(Reason(signal=self.signal, rule=rule, label="follow_up", detail=detail), None)]


CONDITIONS: dict[str, Callable[[Mapping[str, Any], str, str], Condition]] = {
    BankMatch.name: BankMatch,
    MediaUnreadable.name: MediaUnreadable,
    SignalScore.name: SignalScore,
    AfterSignal.name: AfterSignal,
    FollowsSignal.name: FollowsSignal,
}
CONDITION_KEYS: dict[str, frozenset[str]] = {
    BankMatch.name: BankMatch.keys,
    MediaUnreadable.name: MediaUnreadable.keys,
    SignalScore.name: SignalScore.keys,
    AfterSignal.name: AfterSignal.keys,
    FollowsSignal.name: FollowsSignal.keys,
}
RULE_KEYS = frozenset({"name", "when", "verdict", "actions"})


@dataclass(frozen=True, slots=True)
class Rule:
    """A named condition and the verdict it gives (``None``: the condition decides)."""

    name: str
    condition: Condition
    verdict: Verdict | None
    actions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Policy:
    """A loaded policy. ``digest`` identifies the exact file that decided."""

    name: str
    rules: tuple[Rule, ...]
    actions: Mapping[Verdict, tuple[str, ...]]
    pdq_min_quality: int
    digest: str
    source: str

    @property
    def ref(self) -> str:
        """``name@digest``: what a decision records about the policy that made it."""
        return f"{self.name}@{self.digest[:12]}"

    def check(self, signal_types: Collection[str]) -> None:
        """Raise ``PolicyError`` for a rule that names a signal type amber does not have."""
        for rule in self.rules:
            rule.condition.check(signal_types)

    def links(self, findings: Findings) -> frozenset[str]:
        """How earlier posts could matter to any rule for this post (see ``Condition.links``)."""
        out: frozenset[str] = frozenset()
        for rule in self.rules:
            out |= rule.condition.links(findings)
        return out

    def decide(self, findings: Findings) -> Outcome:
        """Apply every rule; the strongest verdict wins and all reasons are kept."""
        verdict = Verdict.allow
        reasons: list[Reason] = []
        extra: list[str] = []
        fired: list[str] = []
        for rule in self.rules:
            found = rule.condition.fire(findings, rule.name)
            if not found:
                continue
            fired.append(rule.name)
            extra.extend(rule.actions)
            for reason, implied in found:
                reasons.append(reason)
                rule_verdict = rule.verdict or implied or Verdict.review
                if rule_verdict.rank > verdict.rank:
                    verdict = rule_verdict
        actions = list(dict.fromkeys([*self.actions[verdict], *extra]))
        return Outcome(verdict, reasons, actions, fired)


DEFAULT_POLICY = "default_policy.toml"


def load_policy(path: Path | None = None) -> Policy:
    """Load a policy file, or the built-in default. Raises ``PolicyError`` naming the key."""
    if path is None:
        text = files("amber").joinpath(DEFAULT_POLICY).read_text(encoding="utf-8")
        return parse_policy(text, source=f"<built-in {DEFAULT_POLICY}>")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy file: {exc.strerror}", path=str(path)) from None
    except UnicodeDecodeError:
        raise PolicyError("policy file is not UTF-8 text", path=str(path)) from None
    return parse_policy(text, source=str(path))


def parse_policy(text: str, *, source: str) -> Policy:
    """Parse policy TOML. Raises ``PolicyError`` with the file and key of the first problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"invalid TOML: {exc}", path=source) from None
    unknown = set(data) - {"name", "actions", "signals", "rules"}
    if unknown:
        raise PolicyError(
            "unknown key; known: name, actions, signals, rules", path=source, key=sorted(unknown)[0]
        )
    name = data.get("name", "custom")
    if not isinstance(name, str) or not name:
        raise PolicyError("expected a non-empty string", path=source, key="name")
    actions = _parse_actions(data.get("actions", {}), source)
    min_quality = _parse_min_quality(data.get("signals", {}), source)
    rules_data = data.get("rules")
    if not isinstance(rules_data, list) or not rules_data:
        raise PolicyError("expected at least one [[rules]] table", path=source, key="rules")
    rules = []
    seen: set[str] = set()
    for i, table in enumerate(rules_data):
        rule = _parse_rule(table, f"rules[{i}]", source)
        if rule.name in seen:
            raise PolicyError(
                f"rule name {rule.name!r} is used twice", path=source, key=f"rules[{i}].name"
            )
        seen.add(rule.name)
        rules.append(rule)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Policy(name, tuple(rules), actions, min_quality, digest, source)


def _parse_actions(table: object, source: str) -> dict[Verdict, tuple[str, ...]]:
    if not isinstance(table, dict):
        raise PolicyError("expected a table", path=source, key="actions")
    out: dict[Verdict, tuple[str, ...]] = {}
    for verdict in Verdict:
        value = _str_list(table, verdict.value, "actions", source)
        out[verdict] = tuple(value or ())
    unknown = set(table) - {v.value for v in Verdict}
    if unknown:
        raise PolicyError(
            "not a verdict; use allow, review, restrict or remove",
            path=source,
            key=f"actions.{sorted(unknown)[0]}",
        )
    return out


def _parse_min_quality(table: object, source: str) -> int:
    if not isinstance(table, dict):
        raise PolicyError("expected a table", path=source, key="signals")
    pdq = table.get("pdq", {})
    if not isinstance(pdq, dict):
        raise PolicyError("expected a table", path=source, key="signals.pdq")
    value = pdq.get("min_quality", 50)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
        raise PolicyError(
            f"expected a whole number from 0 to 100, got {value!r}",
            path=source,
            key="signals.pdq.min_quality",
        )
    return value


def _parse_rule(table: object, where: str, source: str) -> Rule:
    if not isinstance(table, dict):
        raise PolicyError("expected a table", path=source, key=where)
    name = table.get("name")
    if not isinstance(name, str) or not name:
        raise PolicyError("expected a non-empty string", path=source, key=f"{where}.name")
    kind = table.get("when")
    if kind not in CONDITIONS:
        known = ", ".join(sorted(CONDITIONS))
        raise PolicyError(
            f"unknown condition {kind!r}; known: {known}", path=source, key=f"{where}.when"
        )
    unknown = set(table) - RULE_KEYS - CONDITION_KEYS[kind]
    if unknown:
        raise PolicyError(
            f"unknown key for a {kind!r} rule", path=source, key=f"{where}.{sorted(unknown)[0]}"
        )
    verdict_text = table.get("verdict", "bank")
    if verdict_text == "bank":
        verdict = None
    else:
        try:
            verdict = Verdict(verdict_text)
        except ValueError:
            raise PolicyError(
                f"verdict {verdict_text!r} is unknown; use allow, review, restrict, remove or "
                "'bank' (the matched bank's action)",
                path=source,
                key=f"{where}.verdict",
            ) from None
    extra = _str_list(table, "actions", where, source) or []
    return Rule(name, CONDITIONS[kind](table, where, source), verdict, tuple(extra))
