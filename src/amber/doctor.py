"""Checks of amber's state for mistakes that would otherwise fail open without a word.

A policy naming a bank the database does not have, a database with no banks or only
empty ones, a schema behind this amber's migrations, a vault that cannot be opened: each
lets every post through as ``allow`` (or loses evidence) while everything looks fine.
``check(engine)`` runs every function in ``CHECKS`` and returns the problems found;
``amber doctor`` prints them. ``preflight(engine)`` runs the checks a policy's
``[checks]`` table governs before posts are decided (``amber scan``, ``amber serve``):
it raises for those set to ``"error"`` and returns the warnings.

A new check is a function ``(engine) -> Iterable[Problem]`` appended to ``CHECKS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from amber.errors import AmberError, UserError

if TYPE_CHECKING:
    import sqlalchemy as sa

    from amber.engine import Engine


class Severity(StrEnum):
    """How bad a problem is: an ``error`` makes amber wrong, a ``warning`` may."""

    error = "error"
    warning = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with amber's state: which check found it, how bad, and what to do."""

    check: str
    severity: Severity
    message: str

    def to_json(self) -> dict[str, str]:
        """``{"check", "severity", "message"}``: ``amber doctor --format jsonl`` and the
        ``problems`` of ``/v1/health``."""
        return {"check": self.check, "severity": self.severity.value, "message": self.message}


Check = Callable[["Engine"], Iterable[Problem]]


def check_migrations(engine: Engine) -> Iterator[Problem]:
    """The database's schema is at this amber's newest migration."""
    yield from _schema_problems(engine.db)


def _schema_problems(db: sa.Engine) -> Iterator[Problem]:
    from amber.store.db import schema_revision

    current, head = schema_revision(db)
    if current is not None and current != head and not _known_revision(current):
        yield Problem(
            "migrations",
            Severity.error,
            f"the database schema is at revision {current}, which this amber (at {head}) "
            "does not know: it was written by a newer amber; upgrade amber",
        )
    elif current != head:
        yield Problem(
            "migrations",
            Severity.error,
            f"the database schema is at revision {current or 'none (no amber tables)'}, "
            f"this amber's is {head}: back the database up; the next amber command that "
            "opens it (any but doctor) migrates it",
        )


def _known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    from amber.store.db import _alembic_config

    try:
        return ScriptDirectory.from_config(_alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def check_banks(engine: Engine) -> Iterator[Problem]:
    """Every bank the policy names exists, there are banks when the policy matches banks,
    and none the policy relies on is empty. Levels come from the policy's ``[checks]``."""
    policy = engine.policy
    readers = [r for r in policy.rules if r.condition.reads_banks]
    if not readers:
        return
    banks = {b.name: b for b in engine.banks.all()}
    known = ", ".join(banks) or "none"
    relied: set[str] = set()
    for rule in readers:
        named = rule.condition.named_banks()
        if named is None:
            relied.update(banks)
            continue
        relied.update(named & banks.keys())
        for name in sorted(named - banks.keys()):
            yield from _governed(
                engine,
                "unknown_bank",
                f"policy {policy.source} rule {rule.name!r} names bank {name!r}, which the "
                f"database does not have (banks: {known}): nothing can ever match it; "
                f"create it (amber bank create {name}) or correct the rule",
            )
    if not banks:
        names = ", ".join(repr(r.name) for r in readers)
        yield from _governed(
            engine,
            "no_banks",
            f"the database has no banks: policy {policy.source} rule {names} can match "
            "nothing, so posts are decided on their words alone; create one (amber bank "
            "create NAME) and add entries, or check --db",
        )
    for name in sorted(relied):
        if banks[name].entries == 0:
            yield Problem(
                "empty_bank",
                Severity.warning,
                f"bank {name!r} has no entries: nothing can match it yet",
            )


def _governed(engine: Engine, check: str, message: str) -> Iterator[Problem]:
    level = engine.policy.checks.get(check, "error")
    if level != "off":
        yield Problem(check, Severity(level), message)


def check_vault(engine: Engine) -> Iterator[Problem]:
    """The evidence vault opens, or can be created where it is configured."""
    path: Path = engine.vault_path
    if not path.exists():
        if not path.parent.is_dir():
            yield Problem(
                "vault",
                Severity.error,
                f"the evidence vault {str(path)!r} cannot be created: its folder "
                f"{str(path.parent)!r} does not exist (set --vault or AMBER_VAULT)",
            )
        return  # created when evidence is first kept
    if path.is_dir() and not any(path.iterdir()):
        return
    try:
        engine.open_vault()
    except AmberError as exc:
        yield Problem(
            "vault", Severity.error, f"the evidence vault cannot be opened: {exc.message}"
        )


def check_evidence(engine: Engine) -> Iterator[Problem]:
    """Every decision of review or stronger (or confirmed by a reviewer) has its evidence
    in the vault: a pending one is finished by ``amber evidence sweep``."""
    if not (engine.vault_path / "vault.json").exists():
        return  # no vault yet, or not one: check_vault says which
    try:
        engine.open_vault()
    except AmberError:
        return  # check_vault says why it does not open
    try:
        missing = engine.missing_evidence()
    except AmberError as exc:
        yield Problem("evidence", Severity.error, f"evidence cannot be checked: {exc.message}")
        return
    for found in missing:
        remedy = (
            "its preservation is pending: run 'amber evidence sweep'"
            if found.state == "pending"
            else "nothing is staged: scan the post again with its media"
        )
        yield Problem(
            "evidence",
            Severity.error,
            f"post {found.key!r} ({found.verdict}) has no evidence in the vault; {remedy}",
        )


#: Every check ``check`` runs, in order.
CHECKS: list[Check] = [check_migrations, check_banks, check_vault, check_evidence]


def check(engine: Engine, *, checks: Sequence[Check] | None = None) -> list[Problem]:
    """Run ``checks`` (default: ``CHECKS``) on ``engine``'s state; the problems found."""
    return [problem for run in (CHECKS if checks is None else checks) for problem in run(engine)]


def preflight(engine: Engine) -> list[Problem]:
    """The bank checks, before posts are decided: the warnings found.

    Raises ``UserError`` naming every problem the policy's ``[checks]`` makes an error.
    """
    problems = list(check_banks(engine))
    errors = [p.message for p in problems if p.severity is Severity.error]
    if errors:
        raise UserError(
            "; ".join(errors) + " (the policy's [checks] make this an error: docs/policy.md)"
        )
    return problems


def diagnose(
    *, db: str | Path | None = None, vault: Path | None = None, policy: Path | None = None
) -> list[Problem]:
    """``check`` amber's state at ``db``, ``vault`` and ``policy`` (defaults as
    ``open_engine``), without creating or migrating anything: a schema behind this amber's
    is reported alone, as the other checks need it migrated.

    Raises ``UserError`` for a database that does not exist or a bad policy.
    """
    from amber.engine import default_db, open_engine
    from amber.store.db import connect

    db = default_db() if db is None else db
    bare = connect(db, create=False, upgrade=False)
    try:
        behind = list(_schema_problems(bare))
    finally:
        bare.dispose()
    if behind:
        return behind
    with open_engine(db=db, vault=vault, policy=policy, create=False) as engine:
        return check(engine)
