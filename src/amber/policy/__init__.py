"""Policy: from what the signals and banks found to a verdict, actions and reasons.

A policy is a TOML file of rules (docs/policy.md). Each rule tests one condition; the
strongest verdict of the rules that fire wins, with its actions and every reason.
"""

from __future__ import annotations

from amber.policy.conditions import (
    CONDITION_KEYS,
    CONDITIONS,
    LINKS,
    AfterSignal,
    BankMatch,
    Condition,
    FollowsSignal,
    MediaUnreadable,
    SignalScore,
)
from amber.policy.findings import Earlier, Findings
from amber.policy.outcome import Outcome, Reason, Verdict
from amber.policy.rules import DEFAULT_POLICY, RULE_KEYS, Policy, Rule, load_policy, parse_policy

__all__ = [
    "CONDITIONS",
    "CONDITION_KEYS",
    "DEFAULT_POLICY",
    "LINKS",
    "RULE_KEYS",
    "AfterSignal",
    "BankMatch",
    "Condition",
    "Earlier",
    "Findings",
    "FollowsSignal",
    "MediaUnreadable",
    "Outcome",
    "Policy",
    "Reason",
    "Rule",
    "SignalScore",
    "Verdict",
    "load_policy",
    "parse_policy",
]
