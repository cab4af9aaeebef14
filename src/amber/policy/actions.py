"""Actions: what a verdict or a rule asks to be done. Each kind is an ``Action`` subclass
registered by name.

A policy names actions as strings, each a JSONL contract value kept exactly as written:
``"remove"``, or a name and its argument after the first colon
(``"escalate:threat_to_life"``). The built-in kinds are registered by ``default_actions``
exactly as a plug-in's are: ``installed_actions`` adds the kinds that installed
distributions name under the entry-point group ``amber.actions`` (see docs/policy.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from amber.errors import PolicyError, UserError
from amber.policy.outcome import Outcome
from amber.registry import Registry

#: The entry-point group plug-ins name their action kinds in.
ACTIONS_GROUP = "amber.actions"


@dataclass(frozen=True, slots=True)
class Plan:
    """What one action would do for one decided post: for dry runs and previews. Making a
    plan does nothing."""

    #: The action as the policy and the JSONL contract write it (``escalate:threat_to_life``).
    action: str
    post_id: str
    #: One line for a person: what would be done.
    summary: str


class Action(ABC):
    """One kind of action, registered by its ``name``.

    A policy builds one instance per distinct action string when it is loaded:
    ``__init__`` checks the argument (the text after ``name:``; ``None`` without one) and
    raises ``PolicyError(..., path=path, key=where)`` for a bad one, so a wrong policy
    fails at load. ``plan`` is pure. The platform carries the actions out: amber records
    the action strings with each decision and delivers them to its webhooks from the
    outbox, in the decision's transaction (``amber.webhooks``), with an id per delivery
    that the platform keys its idempotent execution on.
    """

    #: The stable lowercase name policies use; set explicitly on every kind.
    name: ClassVar[str] = ""
    #: Whether ``name:argument`` is how the action is written (else the bare name only).
    takes_argument: ClassVar[bool] = False

    def __init__(self, argument: str | None, where: str, path: str) -> None:
        """Check ``argument``; ``where`` is the key that named the action in the policy file
        ``path``. Raises ``PolicyError`` if the kind takes no argument and got one."""
        self.argument = argument
        self.text = self.name if argument is None else f"{self.name}:{argument}"
        if argument is not None and not self.takes_argument:
            raise PolicyError(
                f"action {self.name!r} takes no argument; write {self.name!r}, not {self.text!r}",
                path=path,
                key=where,
            )

    @abstractmethod
    def plan(self, post_id: str, outcome: Outcome) -> Plan:
        """What this action would do for the post ``post_id`` decided as ``outcome``."""


class ReviewAction(Action):
    """Queue the post for a person (the review queue); it stays as its verdict left it."""

    name = "review"

    def plan(self, post_id: str, outcome: Outcome) -> Plan:
        return Plan(
            self.text,
            post_id,
            f"put post {post_id!r} in the review queue (verdict {outcome.verdict.value})",
        )


class RestrictAction(Action):
    """Hide the post pending review."""

    name = "restrict"

    def plan(self, post_id: str, outcome: Outcome) -> Plan:
        return Plan(self.text, post_id, f"hide post {post_id!r} pending review")


class RemoveAction(Action):
    """Take the post down."""

    name = "remove"

    def plan(self, post_id: str, outcome: Outcome) -> Plan:
        return Plan(self.text, post_id, f"remove post {post_id!r}")


class FreezePollAction(Action):
    """Stop the post's poll taking votes, before it can run its course."""

    name = "freeze_poll"

    def plan(self, post_id: str, outcome: Outcome) -> Plan:
        return Plan(self.text, post_id, f"freeze the poll of post {post_id!r}: no more votes")


class NotifyAction(Action):
    """Tell the post's author what was decided and why (a statement of reasons)."""

    name = "notify"

    def plan(self, post_id: str, outcome: Outcome) -> Plan:
        return Plan(
            self.text,
            post_id,
            f"tell the author of post {post_id!r} the verdict ({outcome.verdict.value}) "
            "and its reasons",
        )


class RestrictAccountAction(Action):
    """Restrict the author's account (the account policy recommends it: their strikes
    reached its threshold, ``amber.policy.accounts``); the platform says what that means
    (no new posts, no live video, reduced reach)."""

    name = "restrict_account"

    def plan(self, post_id: str, outcome: Outcome) -> Plan:
        return Plan(self.text, post_id, f"restrict the account of the author of post {post_id!r}")


class SuspendAccountAction(Action):
    """Suspend the author's account (the account policy recommends it: their strikes
    reached its threshold, or the post threatens a life)."""

    name = "suspend_account"

    def plan(self, post_id: str, outcome: Outcome) -> Plan:
        return Plan(self.text, post_id, f"suspend the account of the author of post {post_id!r}")


#: What ``escalate:REASON`` may name, and what it means.
ESCALATIONS = {
    "threat_to_life": "a threat to the life or safety of a person (EU DSA Art. 18)",
}


class EscalateAction(Action):
    """Mark the decision for reporting beyond the platform: ``escalate:threat_to_life``."""

    name = "escalate"
    takes_argument = True

    def __init__(self, argument: str | None, where: str, path: str) -> None:
        super().__init__(argument, where, path)
        if argument is None or argument not in ESCALATIONS:
            known = ", ".join(f"escalate:{reason}" for reason in ESCALATIONS)
            raise PolicyError(
                f"action {self.text!r} names no known reason to escalate; use {known}",
                path=path,
                key=where,
            )
        self.reason = argument

    def plan(self, post_id: str, outcome: Outcome) -> Plan:
        return Plan(
            self.text,
            post_id,
            f"escalate post {post_id!r} to the authorities: {ESCALATIONS[self.reason]}",
        )


def default_actions() -> Registry[type[Action]]:
    """The built-in action kinds, registered the way a plug-in registers its own."""
    registry: Registry[type[Action]] = Registry("action")
    for kind in (
        ReviewAction,
        RestrictAction,
        RemoveAction,
        FreezePollAction,
        NotifyAction,
        EscalateAction,
        RestrictAccountAction,
        SuspendAccountAction,
    ):
        registry.register(kind)
    return registry


def installed_actions() -> Registry[type[Action]]:
    """The built-in action kinds and those of installed plug-ins (entry-point group
    ``amber.actions``). Raises ``UserError`` or ``ConflictError`` for a bad plug-in."""
    registry = default_actions()
    registry.register_entry_points(ACTIONS_GROUP, _action_kind)
    return registry


def _action_kind(loaded: object) -> type[Action]:
    if isinstance(loaded, type) and issubclass(loaded, Action):
        return loaded
    raise UserError(f"expected a subclass of amber.policy.Action, got {loaded!r}")
