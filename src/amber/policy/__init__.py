"""Policy: from what the signals and banks found to a verdict, actions and reasons.

A policy is a TOML file of rules (docs/policy.md). Each rule tests one condition; the
strongest verdict of the rules that fire wins, with its actions and every reason. Condition
kinds and action kinds are extension points: each a class with a stable ``name``, kept in
a registry that built-ins and plug-ins (entry-point groups ``amber.conditions`` and
``amber.actions``) are registered in the same way.
"""

from __future__ import annotations

from amber.policy.accounts import AccountPolicy, AccountStanding
from amber.policy.actions import (
    ACTIONS_GROUP,
    ESCALATIONS,
    Action,
    EscalateAction,
    FreezePollAction,
    NotifyAction,
    Plan,
    RemoveAction,
    RestrictAccountAction,
    RestrictAction,
    ReviewAction,
    SuspendAccountAction,
    default_actions,
    installed_actions,
)
from amber.policy.conditions import (
    CONDITIONS_GROUP,
    LINKS,
    AfterSignal,
    BankMatch,
    Condition,
    FollowsSignal,
    MediaUnreadable,
    RepeatOffender,
    SignalScore,
    UserReportCondition,
    default_conditions,
    installed_conditions,
)
from amber.policy.findings import Earlier, Findings
from amber.policy.outcome import Outcome, Reason, Verdict
from amber.policy.reports import ReportSettings, UserReport
from amber.policy.rules import (
    DEFAULT_POLICY,
    RULE_KEYS,
    Actions,
    Conditions,
    Policy,
    Rule,
    load_policy,
    parse_policy,
)

__all__ = [
    "ACTIONS_GROUP",
    "CONDITIONS_GROUP",
    "DEFAULT_POLICY",
    "ESCALATIONS",
    "LINKS",
    "RULE_KEYS",
    "AccountPolicy",
    "AccountStanding",
    "Action",
    "Actions",
    "AfterSignal",
    "BankMatch",
    "Condition",
    "Conditions",
    "Earlier",
    "EscalateAction",
    "Findings",
    "FollowsSignal",
    "FreezePollAction",
    "MediaUnreadable",
    "NotifyAction",
    "Outcome",
    "Plan",
    "Policy",
    "Reason",
    "RemoveAction",
    "RepeatOffender",
    "ReportSettings",
    "RestrictAccountAction",
    "RestrictAction",
    "ReviewAction",
    "Rule",
    "SignalScore",
    "SuspendAccountAction",
    "UserReport",
    "UserReportCondition",
    "Verdict",
    "default_actions",
    "default_conditions",
    "installed_actions",
    "installed_conditions",
    "load_policy",
    "parse_policy",
]
