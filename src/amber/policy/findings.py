"""What is known about a post when the policy runs: its matches, signals and earlier posts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matching pulls in numpy, SQLAlchemy and the index: not needed here
    from amber.matching import Match
    from amber.policy.accounts import AccountStanding
    from amber.policy.reports import UserReport
    from amber.signals.base import SignalValue


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
    #: Paths of the media files that ended early and were decoded as far as they go.
    truncated: Sequence[str] = ()
    signals: Sequence[SignalValue] = ()
    has_poll: bool = False
    earlier: Sequence[Earlier] = ()
    #: when the post says it was created, and when it is being decided
    created_at: datetime | None = None
    now: datetime | None = None
    #: The author's record from their other posts (``None``: no author, or not looked up).
    account: AccountStanding | None = None
    #: What users reported about the post (``amber.reports``), oldest first.
    reports: Sequence[UserReport] = ()

    def hours_since(self, earlier: Earlier) -> float | None:
        """Hours from ``earlier`` to this post: by the posts' own times when both have
        one, else by when each was scanned. ``None`` when unknown."""
        if self.created_at is not None and earlier.created_at is not None:
            return (self.created_at - earlier.created_at).total_seconds() / 3600
        if self.now is not None and earlier.scanned_at is not None:
            return (self.now - earlier.scanned_at).total_seconds() / 3600
        return None
