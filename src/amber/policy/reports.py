"""User reports as the policy sees them: a policy's ``[reports]`` table (the categories a
report may name, each with how soon a person must look) and one report (``UserReport``).

A report reaches the policy as a finding (``Findings.reports``); the ``user_report``
condition turns each into a reason, and the engine sets the review deadline from its
category (``ReportSettings.due``). ``amber.reports`` files them (docs/reports.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from amber.errors import PolicyError, UserError

#: The reason signal of a user report.
SIGNAL = "user_report"
#: What a category is named like.
CATEGORY = re.compile(r"[a-z][a-z0-9_]{0,39}")
#: A category's deadline may not be further than this (hours): a report must be seen.
MAX_HOURS = 24 * 30


def _default_categories() -> dict[str, float | None]:
    """The built-in categories: the urgent ones with their hours, most urgent first, then
    the ones that wait their turn."""
    return {
        "threat_to_life": 1,
        "self_harm": 1,
        "terrorism": 4,
        "child_safety": 4,
        "violence": None,
        "hate": None,
        "harassment": None,
        "illegal": None,
        "other": None,
    }


@dataclass(frozen=True, slots=True)
class ReportSettings:
    """The categories a user report may name, each with the hours within which a person
    must look at the post: the review queue's deadline, so a smaller number comes first,
    and a post with a deadline comes before every post without one. ``None`` (``false``
    in the policy): no deadline; the post waits its turn by severity and age."""

    categories: Mapping[str, float | None] = field(default_factory=_default_categories)

    def check(self, category: object) -> str:
        """``category`` if it is one of these. Raises ``UserError`` naming the known ones."""
        if not isinstance(category, str) or category not in self.categories:
            known = ", ".join(self.categories)
            raise UserError(f"report category {category!r} is unknown; use one of: {known}")
        return category

    def due(self, category: str, received_at: datetime) -> datetime | None:
        """When a person must have looked at a post reported in ``category`` at
        ``received_at`` (``None`` for a category this policy does not name)."""
        hours = self.categories.get(category)
        return None if hours is None else received_at + timedelta(hours=hours)

    def urgent(self) -> list[str]:
        """The categories with a deadline, most urgent first."""
        timed = [(h, i, c) for i, (c, h) in enumerate(self.categories.items()) if h is not None]
        return [c for _, _, c in sorted(timed)]


def parse_report_settings(table: object, source: str) -> ReportSettings:
    """A policy's ``[reports]`` table (``None``: the defaults). Raises ``PolicyError``
    naming the key of the first problem."""
    if table is None:
        return ReportSettings()
    if not isinstance(table, dict):
        raise PolicyError("expected a table", path=source, key="reports")
    unknown = set(table) - {"categories"}
    if unknown:
        raise PolicyError(
            "unknown key; known: categories", path=source, key=f"reports.{sorted(unknown)[0]}"
        )
    given = table.get("categories")
    if given is None:
        return ReportSettings()
    if not isinstance(given, dict) or not given:
        raise PolicyError(
            "expected a table of categories, each with its hours or false (threat_to_life = 1)",
            path=source,
            key="reports.categories",
        )
    categories: dict[str, float | None] = {}
    for name, hours in given.items():
        key = f"reports.categories.{name}"
        if not CATEGORY.fullmatch(name):
            raise PolicyError(
                "a category is a lowercase word (a-z, 0-9, _; at most 40)", path=source, key=key
            )
        if hours is False:
            categories[name] = None
            continue
        if (
            isinstance(hours, bool)
            or not isinstance(hours, int | float)
            or not 0 < hours <= MAX_HOURS
        ):
            raise PolicyError(
                f"expected the hours within which a person must look (more than 0, at most "
                f"{MAX_HOURS}) or false for none; got {hours!r}",
                path=source,
                key=key,
            )
        categories[name] = float(hours)
    return ReportSettings(categories)


@dataclass(frozen=True, slots=True)
class UserReport:
    """One report of a post by a user, relayed by the platform."""

    id: str
    category: str
    text: str
    received_at: datetime
    #: Who reported it, as the platform names them (``None``: not said).
    reporter: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The report as the API and the CLI write it."""
        return {
            "id": self.id,
            "category": self.category,
            "text": self.text,
            "reporter": self.reporter,
            "received_at": self.received_at.isoformat(),
        }

    def reason_fields(self) -> dict[str, Any]:
        """What a reason keeps of it besides category and text (``Reason.report``)."""
        return {
            "id": self.id,
            "reporter": self.reporter,
            "received_at": self.received_at.isoformat(),
        }

    @classmethod
    def from_reason(cls, reason: Mapping[str, Any]) -> UserReport | None:
        """The report a stored reason holds (``None``: not a report's reason, or one that
        cannot be read)."""
        if reason.get("signal") != SIGNAL:
            return None
        fields = reason.get("report")
        if not isinstance(fields, Mapping):
            return None
        try:
            return cls(
                id=str(fields["id"]),
                category=str(reason.get("label")),
                text=str(reason.get("detail") or ""),
                received_at=datetime.fromisoformat(str(fields["received_at"])),
                reporter=None if fields.get("reporter") is None else str(fields["reporter"]),
            )
        except (KeyError, ValueError):
            return None
