"""Evidence where a person acted: a removal order, a reviewer's confirmation, an appeal
filed and its outcome become custody events of the vault item of the decision acted on
(``docs/evidence.md``): its key is ``amber.identity.item_key(post_id, client, version)``,
so an act on one client's post, or on one version of it, never touches another's
evidence.

Each act is staged in the vault (``Vault.stage(..., events=[...], replace=False)``) before
it is stored in the database, and finished (logged, signed) after; a crash in between
leaves it staged, and the sweep finishes it. A post the vault does not hold (amber
allowed it) is preserved with the order from the bytes the platform sends, checked
against the SHA-256 amber computed when it decided the post.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from amber.decisions import Decision, DecisionStore
from amber.errors import AmberError, ConflictError, NotFoundError, UserError
from amber.evidence.vault import ACTOR, EvidenceWriteError, Vault, _now_text
from amber.identity import item_key

#: How a post preserved with a removal order was collected (its collection record).
ORDER_METHOD = (
    "removal order: bytes sent by the platform with the order, checked against the "
    "sha256 amber computed when it decided the post"
)


class ActPendingError(EvidenceWriteError):
    """A person's act is stored but its custody event could not be logged yet (HTTP
    503): it is staged, and ``amber evidence sweep`` logs it."""


@dataclass(frozen=True, slots=True)
class RemovalOrder:
    """A removal order as the platform relays it (every field optional: an order
    registered without them keeps working, with the time and sender recorded)."""

    reference: str | None = None
    authority: str | None = None
    legal_basis: str | None = None


@dataclass(frozen=True, slots=True)
class Ordered:
    """A removal order registered: the post's review deadline and its evidence state."""

    post_id: str
    deadline: datetime
    evidence: str
    client: str
    version: int

    def to_json(self) -> dict[str, Any]:
        """As ``POST /v1/posts/{post_id}/removal-order`` answers."""
        return {
            "post_id": self.post_id,
            "deadline": self.deadline.isoformat(),
            "evidence": self.evidence,
            "client": self.client,
            "version": self.version,
        }


class Acts:
    """Custody events for people's acts on posts, on one engine's decisions and vault."""

    def __init__(
        self,
        *,
        decisions: DecisionStore,
        vault: Callable[[], Vault],
        vault_path: Path,
        clock: Callable[[], datetime],
    ) -> None:
        self.decisions = decisions
        self.vault = vault
        self.vault_path = vault_path
        self.clock = clock

    def removal_order(
        self,
        post_id: str,
        order: RemovalOrder,
        *,
        sent_by: str,
        media: Sequence[bytes] | None = None,
        client: str | None = None,
    ) -> Ordered:
        """Register a removal order for the newest version of ``client``'s stored post
        (without ``client``: of the only client holding ``post_id``) with its custody
        event; a version the vault does not hold is preserved from ``media`` (the post's
        files, in order).

        Raises ``NotFoundError`` for an unknown post, ``ConflictError`` (409) when several
        clients hold ``post_id`` and ``client`` is not given, or when a newer version is
        stored meanwhile, ``UserError`` (400) when the post's
        media are needed and not sent, ``ConflictError`` (409) when a file is not the one
        amber decided on, ``EvidenceWriteError`` (503, nothing stored) when the vault
        cannot keep it, ``ActPendingError`` (503) when the order is stored and its
        evidence is pending.
        """
        decision = self.decisions.get(post_id, client=client)
        key = decision.key
        vault = self._settled(key)
        now = self.clock()
        event = {
            "event": "removal_order",
            "actor": f"token {sent_by} via {ACTOR}",
            "reference": order.reference,
            "authority": order.authority,
            "legal_basis": order.legal_basis,
            "sent_by": sent_by,
            "received_at": _now_text(now),
            "deadline": _now_text(now + timedelta(hours=1)),
        }
        held = self._held(vault, key)
        files = [] if held else self._checked_media(decision, media)
        vault.stage(
            post_id=post_id,
            post=decision.post,
            decision=_record(decision),
            media=files,
            source=f"removal order {order.reference or '(no reference)'} sent by {sent_by!r}",
            policy=decision.policy,
            events=[event],
            replace=False,
            method=ORDER_METHOD,
            client=decision.client,
            version=decision.version,
        )
        try:
            deadline = self.decisions.removal_order(
                post_id,
                received_at=now,
                client=decision.client,
                version=decision.version,
                order={
                    "reference": order.reference,
                    "authority": order.authority,
                    "legal_basis": order.legal_basis,
                    "sent_by": sent_by,
                },
            )
        except BaseException:
            vault.unstage(key)
            raise
        self._finish(vault, key, f"the removal order is stored (deadline {deadline})")
        return Ordered(post_id, deadline, "preserved", decision.client, decision.version)

    def stage_review(self, post_id: str, review: Mapping[str, Any], *, client: str) -> str:
        """Stage a reviewer's confirmation as a custody event of the vault item of the
        newest version of ``client``'s post, before it is stored; returns the item's key
        (for ``finish`` or ``discard``). Raises ``ConflictError`` (409) when the vault
        holds no evidence of that version, ``EvidenceWriteError`` (503) when it cannot be
        written."""
        decision = self.decisions.get(post_id, client=client)
        key = decision.key
        vault = self._settled(key)
        if not self._held(vault, key):
            raise ConflictError(
                f"post {post_id!r} has no evidence in the vault, so it cannot be confirmed: "
                "a removal must keep what was removed. Preserve it first (rescan it with "
                "its media: 'amber scan'; or send its files with a removal order), then "
                "confirm again; nothing was recorded"
            )
        vault.stage(
            post_id=post_id,
            post=decision.post,
            decision=_record(decision),
            media=[],
            source=f"review by {review.get('reviewer')!r}",
            policy=decision.policy,
            events=[
                {
                    "event": "reviewed",
                    "actor": f"reviewer {review.get('reviewer')} via {ACTOR}",
                    **review,
                }
            ],
            replace=False,
            client=decision.client,
            version=decision.version,
        )
        return key

    def stage_event(
        self,
        post_id: str,
        event: Mapping[str, Any],
        *,
        client: str,
        version: int,
        source: str,
    ) -> str | None:
        """Stage a custody event (``event``: its name, actor and fields) about a person's
        act on version ``version`` of ``client``'s post, before the act is stored (an
        appeal filed or decided); returns the item's key for ``finish`` or ``discard``, or
        ``None`` when the vault holds no evidence of that version (there is nothing to log
        it on: ``amber evidence verify`` reports such posts). Raises ``NotFoundError`` for
        a version amber never decided, ``EvidenceWriteError`` (503) when the vault cannot
        be written."""
        key = item_key(post_id, client, version)
        vault = self._settled(key)
        if not self._held(vault, key):
            return None
        decision = next(
            (d for d in self.decisions.versions(post_id, client=client) if d.version == version),
            None,
        )
        if decision is None:
            raise NotFoundError(f"post {post_id!r} of {client!r} has no version {version}")
        vault.stage(
            post_id=post_id,
            post=decision.post,
            decision=_record(decision),
            media=[],
            source=source,
            policy=decision.policy,
            events=[dict(event)],
            replace=False,
            client=client,
            version=version,
        )
        return key

    def finish(self, key: str, *, stored: str = "the review is recorded") -> None:
        """Log what ``stage_review`` or ``stage_event`` staged under ``key``, once the act
        is stored (``stored`` says what, in the error). Raises ``ActPendingError`` (503) if
        the vault refuses (the sweep logs it later)."""
        self._finish(self.vault(), key, stored)

    def discard(self, key: str) -> None:
        """Forget an act staged under ``key`` that was not stored (the review was
        refused)."""
        self.vault().unstage(key)

    def _settled(self, key: str) -> Vault:
        """The vault, with any preservation of the item ``key`` still staged finished
        first (staging holds one per item). Raises ``EvidenceWriteError`` if it cannot
        be."""
        vault = self.vault()
        try:
            vault.finish(key)
        except AmberError as exc:
            raise EvidenceWriteError(
                f"the evidence of post {key!r} is pending and cannot be finished now "
                f"({exc}); nothing was recorded: try again once the vault can be written"
            ) from exc
        return vault

    @staticmethod
    def _held(vault: Vault, key: str) -> bool:
        item = vault.items().get(key)
        return item is not None and not (item.deleted or item.expiring)

    def _checked_media(
        self, decision: Decision, media: Sequence[bytes] | None
    ) -> list[tuple[int, str, Path | bytes, str]]:
        """The post's media as sent with an order, each checked against the SHA-256 amber
        decided on."""
        post_id = decision.post_id
        expected = self.decisions.media_sha256(post_id, client=decision.client)
        sent = list(media or [])
        if expected and not sent:
            raise UserError(
                f"post {post_id!r} is not held in the evidence vault (amber did not remove "
                f"it), so its {len(expected)} media file(s) must come with the order: send "
                "them as multipart/form-data, the order as the field 'order' (JSON) and the "
                "files as 'media', in the post's order"
            )
        if len(sent) != len(expected):
            raise UserError(
                f"post {post_id!r} has {len(expected)} media file(s) and {len(sent)} were "
                "sent with the order; send each of its files, in the post's order"
            )
        checked: list[tuple[int, str, Path | bytes, str]] = []
        for (position, path, sha256), data in zip(expected, sent, strict=True):
            if sha256 is None:
                raise ConflictError(
                    f"media[{position}] of post {post_id!r} has no stored sha256 to check the "
                    "file sent against; rescan the post with its media first"
                )
            got = _sha256(data)
            if got != sha256:
                raise ConflictError(
                    f"media[{position}] sent with the order (sha256 {got}) is not the file "
                    f"amber decided on for post {post_id!r} (sha256 {sha256}); nothing was "
                    "stored: send the post's own file"
                )
            checked.append((position, path, data, sha256))
        return checked

    @staticmethod
    def _finish(vault: Vault, key: str, stored: str) -> None:
        try:
            vault.finish(key)
        except AmberError as exc:
            raise ActPendingError(
                f"{stored} for post {key!r}, but its custody event is pending ({exc}); "
                "'amber evidence sweep' logs it once the vault can be written"
            ) from exc


def _record(decision: Decision) -> dict[str, Any]:
    """The stored decision as the vault keeps it (with its client and version, as
    ``Engine._decision_record`` writes it)."""
    return {
        **decision.to_answer(),
        "policy": decision.policy,
        "amber_version": decision.amber_version,
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
