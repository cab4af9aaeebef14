"""Rules and the policy that combines them; reading policy files.

A policy is a TOML file (``default_policy.toml`` is the built-in one, documented in
docs/policy.md). Rules each test one condition; every rule that fires adds its reasons,
and the post gets the strongest verdict among them (allow < review < restrict < remove)
with that verdict's actions plus any extra actions of the rules that fired. Conditions
and actions are looked up by name in registries (``default_conditions``,
``default_actions``, or the ``installed_*`` ones with plug-ins, as the engine uses).
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from amber.errors import PolicyError, UserError
from amber.policy.accounts import AccountPolicy, parse_account_policy
from amber.policy.actions import Action, Plan, default_actions
from amber.policy.conditions import Condition, _str_list, default_conditions
from amber.policy.findings import Findings
from amber.policy.outcome import Outcome, Reason, Verdict
from amber.policy.reports import ReportSettings, parse_report_settings
from amber.policy.statements import StatementSettings, parse_statement_settings
from amber.registry import Registry

RULE_KEYS = frozenset({"name", "when", "verdict", "actions"})
#: A policy file's top-level keys, as an error lists them.
TOP_KEYS_SHOWN = (
    "name",
    "actions",
    "signals",
    "rules",
    "checks",
    "statements",
    "accounts",
    "reports",
)
TOP_KEYS = frozenset(TOP_KEYS_SHOWN)
#: A policy's ``[checks]``: what amber does about state that cannot be what the policy
#: expects, each ``"error"`` (refuse to scan or serve, exit 2), ``"warning"`` (go on,
#: saying so on stderr and in ``/v1/health``) or ``"off"``; and their defaults.
CHECKS = {"unknown_bank": "error", "no_banks": "warning"}
#: ``[signals.orb] cells``: by default and at most (``amber.index.binary.NPROBE`` is the
#: index's own default, the same).
ORB_CELLS = 4
MAX_ORB_CELLS = 64
CHECK_LEVELS = ("error", "warning", "off")


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
    #: The checked action of every action string the policy names, by that string.
    configured_actions: Mapping[str, Action]
    #: ``[checks]``: each check's level (``CHECKS`` gives the defaults).
    checks: Mapping[str, str] = field(default_factory=lambda: dict(CHECKS))
    #: ``[statements]``: the platform's side of its statements of reasons (DSA Art. 17).
    statements: StatementSettings = field(default_factory=StatementSettings)
    #: ``[accounts]``: strikes, their decay and the account actions they recommend.
    accounts: AccountPolicy = field(default_factory=AccountPolicy)
    #: ``[reports]``: the categories of user reports and how soon each must be seen.
    reports: ReportSettings = field(default_factory=ReportSettings)
    #: ``[signals.orb] cells``: the cells of the keypoint index each query keypoint reads
    #: (more finds more small crops and collage tiles, at more CPU a query image).
    orb_cells: int = ORB_CELLS
    #: ``[signals.orb] always``: search keypoints for every media item, not only those no
    #: other signal matched (a collage whose whole matches one bank may hold a tile of
    #: another; a rule on ``orb`` alone sees every keypoint match).
    orb_always: bool = False

    @property
    def ref(self) -> str:
        """``name@digest``: what a decision records about the policy that made it."""
        return f"{self.name}@{self.digest[:12]}"

    def check(self, signal_types: Collection[str]) -> None:
        """Raise ``PolicyError`` for a rule that names a signal type amber does not have."""
        for rule in self.rules:
            rule.condition.check(signal_types)

    def links(self, findings: Findings) -> frozenset[str]:
        """How earlier posts could matter to any rule for this post (see ``Condition.links``);
        ``account`` too when the account policy may recommend an action."""
        out: frozenset[str] = frozenset({"account"}) if self.accounts.enabled else frozenset()
        for rule in self.rules:
            out |= rule.condition.links(findings)
        return out

    def decide(self, findings: Findings) -> Outcome:
        """Apply every rule; the strongest verdict wins and all reasons are kept. Then the
        account policy may add an account action (``restrict_account``...) and its reason
        (rule ``accounts``) for the author (``findings.account``)."""
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
        recommended = self.accounts.recommend(findings.account, verdict, actions)
        if recommended is not None:
            actions = list(dict.fromkeys([*actions, recommended.action]))
            reasons.append(self.accounts.reason(recommended))
            fired.append("accounts")
        return Outcome(verdict, reasons, actions, fired)

    def plan(self, post_id: str, outcome: Outcome) -> list[Plan]:
        """What each of ``outcome``'s actions would do for the post ``post_id``, in order
        (for dry runs and previews; nothing is done). ``outcome`` is one this policy gave."""
        plans = []
        for text in outcome.actions:
            action = self.configured_actions.get(text)
            if action is None:
                raise UserError(f"action {text!r} is not one that policy {self.ref} names")
            plans.append(action.plan(post_id, outcome))
        return plans


DEFAULT_POLICY = "default_policy.toml"

Conditions = Registry[type[Condition]]
Actions = Registry[type[Action]]


def load_policy(
    path: Path | None = None,
    *,
    conditions: Conditions | None = None,
    actions: Actions | None = None,
) -> Policy:
    """Load a policy file, or the built-in default. Raises ``PolicyError`` naming the key.

    ``conditions`` and ``actions`` are the kinds a policy may name (default: the built-in
    ones; ``installed_conditions()`` and ``installed_actions()`` add plug-ins').
    """
    if path is None:
        text = files("amber").joinpath(DEFAULT_POLICY).read_text(encoding="utf-8")
        return parse_policy(
            text, source=f"<built-in {DEFAULT_POLICY}>", conditions=conditions, actions=actions
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy file: {exc.strerror}", path=str(path)) from None
    except UnicodeDecodeError:
        raise PolicyError("policy file is not UTF-8 text", path=str(path)) from None
    return parse_policy(text, source=str(path), conditions=conditions, actions=actions)


def parse_policy(
    text: str,
    *,
    source: str,
    conditions: Conditions | None = None,
    actions: Actions | None = None,
) -> Policy:
    """Parse policy TOML (``conditions``, ``actions``: as ``load_policy``). Raises
    ``PolicyError`` with the file and key of the first problem."""
    conditions = default_conditions() if conditions is None else conditions
    configured = _Configured(default_actions() if actions is None else actions, source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"invalid TOML: {exc}", path=source) from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise PolicyError("invalid TOML: arrays or tables nested too deeply", path=source) from None
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise PolicyError(
            f"unknown key; known: {', '.join(TOP_KEYS_SHOWN)}",
            path=source,
            key=sorted(unknown)[0],
        )
    name = data.get("name", "custom")
    if not isinstance(name, str) or not name:
        raise PolicyError("expected a non-empty string", path=source, key="name")
    verdict_actions = _parse_actions(data.get("actions", {}), source, configured)
    min_quality = _parse_min_quality(data.get("signals", {}), source)
    orb_cells, orb_always = _parse_orb(data.get("signals", {}), source)
    checks = _parse_checks(data.get("checks", {}), source)
    statements = parse_statement_settings(data.get("statements"), source)
    accounts = parse_account_policy(
        data.get("accounts"), source, lambda action, key: configured.add([action], key)
    )
    reports = parse_report_settings(data.get("reports"), source)
    rules_data = data.get("rules")
    if not isinstance(rules_data, list) or not rules_data:
        raise PolicyError("expected at least one [[rules]] table", path=source, key="rules")
    rules = []
    seen: set[str] = set()
    for i, table in enumerate(rules_data):
        rule = _parse_rule(table, f"rules[{i}]", source, conditions, configured)
        if rule.name in seen:
            raise PolicyError(
                f"rule name {rule.name!r} is used twice", path=source, key=f"rules[{i}].name"
            )
        seen.add(rule.name)
        rules.append(rule)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Policy(
        name,
        tuple(rules),
        verdict_actions,
        min_quality,
        digest,
        source,
        configured.actions,
        checks,
        statements,
        accounts,
        reports,
        orb_cells,
        orb_always,
    )


def _parse_checks(table: object, source: str) -> dict[str, str]:
    if not isinstance(table, dict):
        raise PolicyError("expected a table", path=source, key="checks")
    checks = dict(CHECKS)
    for key, level in table.items():
        if key not in CHECKS:
            raise PolicyError(
                f"unknown check; known: {', '.join(CHECKS)}", path=source, key=f"checks.{key}"
            )
        if level not in CHECK_LEVELS:
            raise PolicyError(
                f"{level!r} is not a level; use {', '.join(map(repr, CHECK_LEVELS))}",
                path=source,
                key=f"checks.{key}",
            )
        checks[key] = level
    return checks


class _Configured:
    """The actions a policy names, each checked once by its kind when first named."""

    def __init__(self, kinds: Actions, source: str) -> None:
        self.kinds = kinds
        self.source = source
        self.actions: dict[str, Action] = {}

    def add(self, texts: list[str], where: str, rule: str | None = None) -> tuple[str, ...]:
        """Check each action string named at key ``where`` (in ``rule``, if any)."""
        for text in texts:
            if text in self.actions:
                continue
            name, colon, argument = text.partition(":")
            if name not in self.kinds:
                in_rule = "" if rule is None else f" in rule {rule!r}"
                raise PolicyError(
                    f"unknown action {text!r}{in_rule}; known: {self.kinds.known()}",
                    path=self.source,
                    key=where,
                )
            kind = self.kinds.get(name)
            self.actions[text] = kind(argument if colon else None, where, self.source)
        return tuple(texts)


def _parse_actions(
    table: object, source: str, configured: _Configured
) -> dict[Verdict, tuple[str, ...]]:
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
    for verdict, texts in out.items():
        configured.add(list(texts), f"actions.{verdict.value}")
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


def _parse_orb(table: dict[str, object], source: str) -> tuple[int, bool]:
    """``[signals.orb]``: ``cells`` and ``always``."""
    orb = table.get("orb", {})
    if not isinstance(orb, dict):
        raise PolicyError("expected a table", path=source, key="signals.orb")
    if unknown := sorted(set(orb) - {"cells", "always"}):
        raise PolicyError(
            "unknown setting; the known ones are cells and always",
            path=source,
            key=f"signals.orb.{unknown[0]}",
        )
    value = orb.get("cells", ORB_CELLS)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_ORB_CELLS:
        raise PolicyError(
            f"expected a whole number from 1 to {MAX_ORB_CELLS}, got {value!r}",
            path=source,
            key="signals.orb.cells",
        )
    always = orb.get("always", False)
    if not isinstance(always, bool):
        raise PolicyError(
            f"expected true or false, got {always!r}", path=source, key="signals.orb.always"
        )
    return value, always


def _parse_rule(
    table: object, where: str, source: str, conditions: Conditions, configured: _Configured
) -> Rule:
    if not isinstance(table, dict):
        raise PolicyError("expected a table", path=source, key=where)
    name = table.get("name")
    if not isinstance(name, str) or not name:
        raise PolicyError("expected a non-empty string", path=source, key=f"{where}.name")
    kind = table.get("when")
    if not isinstance(kind, str) or kind not in conditions:
        raise PolicyError(
            f"unknown condition {kind!r} in rule {name!r}; known: {conditions.known()}",
            path=source,
            key=f"{where}.when",
        )
    condition = conditions.get(kind)
    unknown = set(table) - RULE_KEYS - condition.keys
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
    extra_actions = configured.add(extra, f"{where}.actions", rule=name)
    return Rule(name, condition(table, where, source), verdict, extra_actions)
