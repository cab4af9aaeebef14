"""Conditions: what a rule tests. Each kind is a ``Condition`` subclass registered by name.

The built-in kinds are registered by ``default_conditions`` exactly as a plug-in's are:
``installed_conditions`` adds the kinds that installed distributions name under the
entry-point group ``amber.conditions`` (see docs/policy.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from amber.errors import PolicyError, UserError
from amber.policy.findings import Earlier, Findings
from amber.policy.outcome import Reason, Verdict
from amber.registry import Registry
from amber.signals.base import SignalValue, frame_of

if TYPE_CHECKING:
    from amber.matching import Match
    from amber.signals.base import Region

#: The entry-point group plug-ins name their condition kinds in.
CONDITIONS_GROUP = "amber.conditions"


class Condition(ABC):
    """One kind of rule condition, registered by its ``name`` (a rule's ``when``).

    A policy builds one instance per rule from the rule's table: ``__init__`` reads the
    options listed in ``keys`` and raises ``PolicyError(..., path=path,
    key=f"{where}.<option>")`` for a bad one, so a wrong policy fails when it is loaded.
    ``fire`` is pure: it looks only at the findings.
    """

    #: The stable lowercase name a rule's ``when`` gives; set explicitly on every kind.
    name: ClassVar[str] = ""
    #: The rule options this kind reads (besides ``name``, ``when``, ``verdict``, ``actions``).
    keys: ClassVar[frozenset[str]] = frozenset()
    #: True for a kind that fires on bank matches (so it needs banks to do anything).
    reads_banks: ClassVar[bool] = False

    def __init__(self, table: Mapping[str, Any], where: str, path: str) -> None:
        """Read the rule's options from ``table`` (``where`` is the rule's key, e.g.
        ``rules[0]``, in the policy file ``path``). Raises ``PolicyError`` for a bad one."""
        del table
        self.where, self.path = where, path

    @abstractmethod
    def fire(self, findings: Findings, rule: str) -> list[tuple[Reason, Verdict | None]]:
        """Reasons this condition found, each with the verdict it implies (None: the rule's)."""

    def check(self, signal_types: Collection[str]) -> None:
        """Raise ``PolicyError`` if the condition names a signal type that does not exist."""
        del signal_types

    def named_banks(self) -> frozenset[str] | None:
        """The banks this condition is limited to (``None``: every bank, or none read)."""
        return None

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
    reads_banks = True

    def __init__(self, table: Mapping[str, Any], where: str, path: str) -> None:
        super().__init__(table, where, path)
        self.signals = _str_list(table, "signals", where, path)
        self.banks = _str_list(table, "banks", where, path)
        self.labels = _str_list(table, "labels", where, path)
        max_distance = table.get("max_distance")
        if max_distance is not None and (
            isinstance(max_distance, bool) or not isinstance(max_distance, int) or max_distance < 0
        ):
            got = " (got a boolean)" if isinstance(max_distance, bool) else ""
            raise PolicyError(
                f"expected a whole number >= 0{got}", path=path, key=f"{where}.max_distance"
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

    def named_banks(self) -> frozenset[str] | None:
        return None if self.banks is None else frozenset(self.banks)

    def fire(self, findings: Findings, rule: str) -> list[tuple[Reason, Verdict | None]]:
        """A reason per match; a media item that matches an allow bank (known-benign
        content) is not actioned for its matches to other banks: the allow bank's match
        is the reason, naming the banks it overrides."""
        out: list[tuple[Reason, Verdict | None]] = []
        allows = [m for m in findings.matches if m.action == ALLOW]
        overridden: dict[int, list[str]] = {}  # by the allow match's entry
        skipped: set[int] = set()
        for i, m in enumerate(findings.matches):
            by = next((a for a in allows if m.action != ALLOW and _covers(a, m)), None)
            if by is not None:
                overridden.setdefault(by.entry_id, []).append(m.bank)
                skipped.add(i)
        for i, m in enumerate(findings.matches):
            if i in skipped:
                continue
            if self.signals is not None and m.signal_type not in self.signals:
                continue
            if self.banks is not None and m.bank not in self.banks and m.action != ALLOW:
                continue
            if self.labels is not None and m.label not in self.labels and m.action != ALLOW:
                continue
            if self.max_distance is not None and m.distance > self.max_distance:
                continue
            detail = f"entry {m.entry_source!r}"
            if m.action == ALLOW:
                others = sorted(set(overridden.get(m.entry_id, [])))
                detail = "known-benign (allow bank) " + detail
                if others:
                    detail += "; overrides its matches to " + ", ".join(others)
            query_view, entry_view = _view(m.query_variant), _view(m.entry_variant)
            if m.geometry is not None:  # local features: the view is the image or its mirror
                query_view = "original" if query_view != "mirror" else query_view
            if query_view != "original" or entry_view != "original":
                detail += f" via {query_view} -> {entry_view}"
            if m.geometry is not None:
                g = m.geometry
                detail += (
                    f"; {g.inliers} of {g.pairs} keypoint pairs agree; the banked photo lies "
                    f"at {_box(g.post)} of the post's image, which shows {_box(g.entry)} of it"
                )
            if (when := _when(m)) is not None:
                detail += f"; {when}"
            media = findings.media_paths[m.media] if m.media < len(findings.media_paths) else None
            if media is not None and media in findings.truncated:
                detail += "; the file is truncated, matched on what it holds"
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
                video=m.video(),
                region=m.region(),
            )
            out.append((reason, Verdict(m.action)))
        return out


#: A bank action whose matches override the others' (``amber.banks.BankAction.allow``).
ALLOW = "allow"


def _covers(allow: Match, m: Match) -> bool:
    """Does an allow bank's match override match ``m``: the same media item, and, when
    both are in time (a video), overlapping spans of it, so that a compilation cannot
    shield a banked clip by also playing allowed footage?"""
    if allow.media != m.media:
        return False
    if allow.query_span is None or m.query_span is None:
        return True
    return allow.query_span[0] <= m.query_span[1] and m.query_span[0] <= allow.query_span[1]


def _when(m: Match) -> str | None:
    """Where a match involving a video lies in time, in words; ``None`` for stills."""
    parts = []
    if m.query_percent is not None and m.entry_percent is not None:
        parts.append(
            f"{m.query_percent:g}% of the post's{_counted(m.query_frames)} frames match, "
            f"covering {m.entry_percent:g}% of the entry's{_counted(m.entry_frames)}"
        )
    for seg in m.segments:
        parts.append(
            f"{seg.query_start:.1f}-{seg.query_end:.1f} s of the post plays "
            f"{seg.compared_start:.1f}-{seg.compared_end:.1f} s of the entry"
        )
    if not m.segments and m.query_span is not None:
        parts.append(f"at {_span(m.query_span)} of the post")
    if not m.segments and m.entry_span is not None:
        parts.append(f"at {_span(m.entry_span)} of the entry")
    return "; ".join(parts) or None


def _counted(frames: tuple[int, int] | None) -> str:
    """`` 3 usable (of 17)``: how many frames a share counts, when not all of them."""
    if frames is None:
        return ""
    usable, every = frames
    return f" {usable}" if usable == every else f" {usable} usable (of {every})"


def _box(region: Region) -> str:
    """A region in words: ``x 0-50%, y 0-50%``."""
    return (
        f"x {round(region.x0 * 100)}-{round(region.x1 * 100)}%, "
        f"y {round(region.y0 * 100)}-{round(region.y1 * 100)}%"
    )


def _view(variant: str) -> str:
    """The view a variant names, without a video frame's time (said apart)."""
    frame = frame_of(variant)
    return variant if frame is None else frame.view


def _span(span: tuple[float, float]) -> str:
    start, end = span
    return f"{start:.1f} s" if end - start < 0.05 else f"{start:.1f}-{end:.1f} s"


class MediaUnreadable(Condition):
    """Fires for each media file that could not be read or decoded (corrupt, truncated,
    not an image, over the limits): what amber could not look at, a person should."""

    name = "media_unreadable"

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
        super().__init__(table, where, path)
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
            isinstance(hours, bool) or not isinstance(hours, int | float) or not hours > 0
        ):  # `not > 0`: NaN compares false with everything
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
        super().__init__(table, where, path)
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


class RepeatOffender(Condition):
    """Fires for a post whose author already has at least ``min_strikes`` strikes (decayed,
    from their other posts in the account policy's window: ``amber.policy.accounts``):
    a repeat offender. With ``signal``, only when the post also scores at least
    ``min_score`` on it (and is one of ``values``): weaker evidence is enough from an
    account with a record.
    """

    name = "repeat_offender"
    keys = frozenset({"min_strikes", "signal", "values", "min_score"})

    def __init__(self, table: Mapping[str, Any], where: str, path: str) -> None:
        super().__init__(table, where, path)
        strikes = table.get("min_strikes", 1)
        if isinstance(strikes, bool) or not isinstance(strikes, int | float) or not strikes > 0:
            raise PolicyError(
                f"expected a number of strikes > 0, got {strikes!r}",
                path=path,
                key=f"{where}.min_strikes",
            )
        self.min_strikes = float(strikes)
        self.signal = table.get("signal")
        if self.signal is not None and (not isinstance(self.signal, str) or not self.signal):
            raise PolicyError(
                "expected the name of a signal type", path=path, key=f"{where}.signal"
            )
        if self.signal is None and ("values" in table or "min_score" in table):
            raise PolicyError(
                "values and min_score need a signal", path=path, key=f"{where}.signal"
            )
        self.values = _str_list(table, "values", where, path)
        self.min_score = _score(table, "min_score", where, path, 0.5)

    def check(self, signal_types: Collection[str]) -> None:
        if self.signal is not None and self.signal not in signal_types:
            raise PolicyError(
                f"unknown signal type {self.signal!r}; known: {', '.join(sorted(signal_types))}",
                path=self.path,
                key=f"{self.where}.signal",
            )

    def links(self, findings: Findings) -> frozenset[str]:
        return frozenset({"account"})

    def fire(self, findings: Findings, rule: str) -> list[tuple[Reason, Verdict | None]]:
        standing = findings.account
        if standing is None or standing.strikes < self.min_strikes:
            return []
        record = (
            f"author {standing.author!r} has {standing.strikes:.2f} strikes from "
            f"{standing.posts} earlier {'post' if standing.posts == 1 else 'posts'}"
        )
        if self.signal is None:
            return [(Reason(signal="account", rule=rule, label=self.name, detail=record), None)]
        found = [
            v
            for v in findings.signals
            if v.signal_type == self.signal
            and (self.values is None or v.value in self.values)
            and v.score is not None
            and v.score >= self.min_score
        ]
        return [
            (
                Reason(
                    signal=v.signal_type,
                    rule=rule,
                    label=v.value,
                    score=v.score,
                    detail=f"{record}; {v.detail}" if v.detail else record,
                ),
                None,
            )
            for v in found
        ]


class UserReportCondition(Condition):
    """Fires for each report users made of the post (``amber.reports``), optionally only
    those of some ``categories``: each is a reason (its category as the label, its text as
    the detail), and the post goes to a person however the rest of the policy judged it.
    """

    name = "user_report"
    keys = frozenset({"categories"})

    def __init__(self, table: Mapping[str, Any], where: str, path: str) -> None:
        super().__init__(table, where, path)
        self.categories = _str_list(table, "categories", where, path)

    def links(self, findings: Findings) -> frozenset[str]:
        return frozenset({"reports"})

    def fire(self, findings: Findings, rule: str) -> list[tuple[Reason, Verdict | None]]:
        return [
            (
                Reason(
                    signal="user_report",
                    rule=rule,
                    label=report.category,
                    detail=report.text,
                    report=report.reason_fields(),
                ),
                None,
            )
            for report in findings.reports
            if self.categories is None or report.category in self.categories
        ]


def default_conditions() -> Registry[type[Condition]]:
    """The built-in condition kinds, registered the way a plug-in registers its own."""
    registry: Registry[type[Condition]] = Registry("condition")
    for kind in (
        BankMatch,
        MediaUnreadable,
        SignalScore,
        AfterSignal,
        FollowsSignal,
        RepeatOffender,
        UserReportCondition,
    ):
        registry.register(kind)
    return registry


def installed_conditions() -> Registry[type[Condition]]:
    """The built-in condition kinds and those of installed plug-ins (entry-point group
    ``amber.conditions``). Raises ``UserError`` or ``ConflictError`` for a bad plug-in."""
    registry = default_conditions()
    registry.register_entry_points(CONDITIONS_GROUP, _condition_kind)
    return registry


def _condition_kind(loaded: object) -> type[Condition]:
    if isinstance(loaded, type) and issubclass(loaded, Condition):
        return loaded
    raise UserError(f"expected a subclass of amber.policy.Condition, got {loaded!r}")
