"""Condition and action kinds as registries: built-ins, plug-ins through the registry and
through a real entry point (scanning a real post on real SQLite), duplicates, and policy
errors that name the file, the rule and the known names."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from amber.engine import ScanResult, open_engine
from amber.errors import ConflictError, PolicyError, UserError
from amber.policy import (
    AfterSignal,
    BankMatch,
    Condition,
    EscalateAction,
    Findings,
    Outcome,
    Reason,
    RemoveAction,
    Verdict,
    default_actions,
    default_conditions,
    installed_actions,
    installed_conditions,
    load_policy,
    parse_policy,
)
from amber.posts import read_input
from amber.registry import Registry

#: A plug-in as a third party would write it: one condition kind, one action kind.
PLUGIN = '''
from amber.errors import PolicyError
from amber.policy import Action, Condition, Plan, Reason


class PollPresent(Condition):
    """Fires for a post with a poll; ``note`` is the reason's detail."""

    name = "poll_present"
    keys = frozenset({"note"})

    def __init__(self, table, where, path):
        super().__init__(table, where, path)
        note = table.get("note")
        if not isinstance(note, str) or not note:
            raise PolicyError("expected a note", path=path, key=f"{where}.note")
        self.note = note

    def fire(self, findings, rule):
        if not findings.has_poll:
            return []
        return [(Reason(signal="poll", rule=rule, detail=self.note), None)]


class Tag(Action):
    """``tag:WORD``: label the post in the platform's own tools."""

    name = "tag"
    takes_argument = True

    def __init__(self, argument, where, path):
        super().__init__(argument, where, path)
        if not argument or not argument.isalpha():
            raise PolicyError(f"expected tag:<letters>, got {self.text!r}", path=path, key=where)
        self.tag = argument

    def plan(self, post_id, outcome):
        return Plan(self.text, post_id, f"tag post {post_id!r} as {self.tag!r}")
'''

PLUGGED = """
name = "plugged"
[actions]
review = ["review", "tag:polls"]
restrict = ["restrict", "review"]
remove = ["remove"]
[[rules]]
name = "bank-match"
when = "bank_match"
verdict = "bank"
[[rules]]
name = "any-poll"
when = "poll_present"
note = "has a poll"
verdict = "review"
actions = ["tag:seen", "notify"]
"""

POSTS = [
    {
        "id": "lunch",
        "text": "Lunch today?",
        "poll": {"question": "Where shall we eat?", "options": ["pizza", "sushi"]},
    },
    {"id": "plain", "text": "Lovely weather at the lake this morning."},
]


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on ``sys.path`` holding the plug-in module ``amber_demo_plugin``."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "amber_demo_plugin.py").write_text(PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("amber_demo_plugin", None)


def install(site: Path, entry_points: str) -> None:
    """Make ``site`` hold an installed distribution declaring ``entry_points``."""
    dist = site / "amber_demo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: amber-demo-plugin\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(entry_points, encoding="utf-8")
    importlib.invalidate_caches()


ENTRY_POINTS = """
[amber.conditions]
poll_present = amber_demo_plugin:PollPresent

[amber.actions]
tag = amber_demo_plugin:Tag
"""


def scan_plugged(
    tmp_path: Path, write_posts: Callable[..., Path], **registries: Any
) -> tuple[dict[str, ScanResult], list[list[str]], list[str]]:
    """Scan POSTS with the PLUGGED policy on a fresh SQLite database; return the results,
    the stored actions of each post and the plans' summaries for ``lunch``."""
    policy = tmp_path / "plugged.toml"
    policy.write_text(PLUGGED, encoding="utf-8")
    with open_engine(
        db=tmp_path / "amber.db", vault=tmp_path / "vault", policy=policy, **registries
    ) as engine:
        results = {
            r.post.id: r
            for r in engine.scan(read_input(write_posts(POSTS)), workers=1)
            if isinstance(r, ScanResult)
        }
        stored = [engine.decisions.get(post_id).actions for post_id in ("lunch", "plain")]
        plans = engine.policy.plan("lunch", results["lunch"].outcome)
    assert [p.action for p in plans] == results["lunch"].outcome.actions
    return results, stored, [p.summary for p in plans]


def check_plugged(
    results: dict[str, ScanResult], stored: list[list[str]], summaries: list[str]
) -> None:
    lunch, plain = results["lunch"], results["plain"]
    assert lunch.outcome.verdict is Verdict.review
    assert [r.to_json() for r in lunch.outcome.reasons] == [
        {"signal": "poll", "detail": "has a poll", "rule": "any-poll"}
    ]
    assert lunch.outcome.actions == ["review", "tag:polls", "tag:seen", "notify"]
    assert plain.outcome.verdict is Verdict.allow and plain.outcome.actions == []
    assert stored == [["review", "tag:polls", "tag:seen", "notify"], []]
    assert summaries == [
        "put post 'lunch' in the review queue (verdict review)",
        "tag post 'lunch' as 'polls'",
        "tag post 'lunch' as 'seen'",
        "tell the author of post 'lunch' the verdict (review) and its reasons",
    ]


def test_plugin_registered_through_the_registries_decides_a_scanned_post(
    plugin: Path, tmp_path: Path, write_posts: Callable[..., Path]
) -> None:
    module: ModuleType = importlib.import_module("amber_demo_plugin")
    conditions = default_conditions()
    conditions.register(module.PollPresent)
    actions = default_actions()
    actions.register(module.Tag)
    check_plugged(*scan_plugged(tmp_path, write_posts, conditions=conditions, actions=actions))


def test_plugin_installed_by_entry_point_decides_a_scanned_post(
    plugin: Path, tmp_path: Path, write_posts: Callable[..., Path]
) -> None:
    install(plugin, ENTRY_POINTS)
    assert "poll_present" in installed_conditions() and "tag" in installed_actions()
    check_plugged(*scan_plugged(tmp_path, write_posts))


def test_without_the_plugin_its_policy_is_refused(plugin: Path, tmp_path: Path) -> None:
    policy = tmp_path / "plugged.toml"
    policy.write_text(PLUGGED, encoding="utf-8")
    where = {"db": tmp_path / "amber.db", "vault": tmp_path / "vault", "policy": policy}
    with pytest.raises(PolicyError) as info:
        open_engine(**where)  # type: ignore[arg-type]
    assert info.value.key == "actions.review"
    assert "unknown action 'tag:polls'; known: escalate, freeze_poll" in info.value.message
    actions = default_actions()
    actions.register(importlib.import_module("amber_demo_plugin").Tag)
    with pytest.raises(PolicyError) as info:
        open_engine(**where, actions=actions)  # type: ignore[arg-type]
    assert info.value.key == "rules[1].when"
    assert "unknown condition 'poll_present' in rule 'any-poll'" in info.value.message


@pytest.mark.parametrize(
    ("entry_points", "error", "words"),
    [
        (
            "[amber.conditions]\nbank_match = amber_demo_plugin:PollPresent\n",
            UserError,
            "loads condition 'poll_present'; the entry point and",
        ),
        (
            "[amber.actions]\nremove = amber_demo_plugin:RemoveAction\n",
            UserError,
            "could not be loaded (AttributeError",
        ),
        (
            "[amber.actions]\npoll_present = amber_demo_plugin:PollPresent\n",
            UserError,
            "expected a subclass of amber.policy.Action",
        ),
    ],
)
def test_bad_plugins_are_refused_naming_the_entry_point(
    plugin: Path, entry_points: str, error: type[UserError], words: str
) -> None:
    install(plugin, entry_points)
    with pytest.raises(error) as info:
        installed_actions()
        installed_conditions()
    assert type(info.value) is error
    assert words in info.value.message
    assert "plug-in entry point" in info.value.message and "amber-demo-plugin 1.0" in (
        info.value.message
    )


def test_a_plugin_cannot_take_a_builtin_name(plugin: Path) -> None:
    install(plugin, "[amber.actions]\nremove = amber_demo_plugin:RemoveAction\n")
    (plugin / "amber_demo_plugin.py").write_text(
        PLUGIN + "\n\nclass RemoveAction(Tag):\n    name = 'remove'\n", encoding="utf-8"
    )
    with pytest.raises(ConflictError) as info:
        installed_actions()
    assert "entry point 'remove'" in info.value.message
    assert "action 'remove' is already registered; choose another name" in info.value.message


def test_every_builtin_is_registered() -> None:
    assert sorted(default_conditions().names()) == [
        "after_signal",
        "bank_match",
        "follows_signal",
        "media_unreadable",
        "repeat_offender",
        "signal_score",
        "user_report",
    ]
    assert sorted(default_actions().names()) == [
        "escalate",
        "freeze_poll",
        "notify",
        "remove",
        "restrict",
        "restrict_account",
        "review",
        "suspend_account",
    ]
    policy = load_policy()
    named = {a for texts in policy.actions.values() for a in texts}
    named |= {a for rule in policy.rules for a in rule.actions}
    assert named == {"review", "restrict", "remove", "freeze_poll", "escalate:threat_to_life"}
    # The account policy's actions too ([accounts]: thresholds, threat_to_life).
    configured = named | {"restrict_account", "suspend_account"}
    assert set(policy.configured_actions) == configured
    assert isinstance(policy.configured_actions["escalate:threat_to_life"], EscalateAction)
    outcome = Outcome(Verdict.restrict, [], sorted(configured))
    plans = policy.plan("p1", outcome)
    assert [p.action for p in plans] == sorted(configured)
    assert [p.summary for p in plans] == [
        "escalate post 'p1' to the authorities: a threat to the life or safety of a person "
        "(EU DSA Art. 18)",
        "freeze the poll of post 'p1': no more votes",
        "remove post 'p1'",
        "hide post 'p1' pending review",
        "restrict the account of the author of post 'p1'",
        "put post 'p1' in the review queue (verdict restrict)",
        "suspend the account of the author of post 'p1'",
    ]


def test_a_plan_for_an_action_the_policy_does_not_name_is_refused() -> None:
    with pytest.raises(UserError, match="'notify' is not one that policy default@"):
        load_policy().plan("p1", Outcome(Verdict.remove, [], ["remove", "notify"]))


class Duplicate(Condition):
    name = "bank_match"

    def fire(self, findings: Findings, rule: str) -> list[tuple[Reason, Verdict | None]]:
        return []


class Unnamed(Condition):
    def fire(self, findings: Findings, rule: str) -> list[tuple[Reason, Verdict | None]]:
        return []


def test_duplicate_and_unnamed_kinds_are_refused() -> None:
    conditions = default_conditions()
    with pytest.raises(ConflictError, match="condition 'bank_match' is already registered"):
        conditions.register(Duplicate)
    with pytest.raises(ConflictError, match="action 'remove' is already registered"):
        default_actions().register(RemoveAction)
    with pytest.raises(UserError, match=r"condition name '' .* is not a lowercase word"):
        conditions.register(Unnamed)
    assert conditions.get("bank_match") is BankMatch
    assert conditions.get("after_signal") is AfterSignal


RULE = "[[rules]]\nname = 'a-rule'\nwhen = 'bank_match'\n"


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (
            "[[rules]]\nname = 'a-rule'\nwhen = 'vibes'\n",
            "rules[0].when",
            "unknown condition 'vibes' in rule 'a-rule'; known: after_signal, bank_match, "
            "follows_signal, media_unreadable, repeat_offender, signal_score, user_report",
        ),
        (
            "[[rules]]\nname = 'a-rule'\nwhen = ['bank_match']\n",
            "rules[0].when",
            "unknown condition ['bank_match'] in rule 'a-rule'",
        ),
        (
            RULE + "actions = ['review', 'ban_user']\n",
            "rules[0].actions",
            "unknown action 'ban_user' in rule 'a-rule'; known: escalate, freeze_poll, notify, "
            "remove, restrict, restrict_account, review, suspend_account",
        ),
        (
            "[actions]\nremove = ['remove', 'shadowban']\n" + RULE,
            "actions.remove",
            "unknown action 'shadowban'; known: escalate, freeze_poll",
        ),
        (
            "[actions]\nremove = ['remove:now']\n" + RULE,
            "actions.remove",
            "action 'remove' takes no argument; write 'remove', not 'remove:now'",
        ),
        (
            RULE + "actions = ['escalate']\n",
            "rules[0].actions",
            "action 'escalate' names no known reason to escalate; use escalate:threat_to_life",
        ),
        (
            RULE + "actions = ['escalate:bad_vibes']\n",
            "rules[0].actions",
            "action 'escalate:bad_vibes' names no known reason",
        ),
    ],
)
def test_unknown_kinds_name_the_file_the_rule_and_the_known_names(
    tmp_path: Path, text: str, key: str, words: str
) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.path == str(path) and info.value.key == key
    assert info.value.message.startswith(f"{path}, key '{key}': ")
    assert words in info.value.message


def test_registries_passed_to_parse_policy_are_the_only_kinds_known() -> None:
    conditions: Registry[type[Condition]] = Registry("condition")
    conditions.register(BankMatch)
    with pytest.raises(
        PolicyError, match=r"unknown condition 'signal_score' .*; known: bank_match$"
    ):
        parse_policy(
            RULE + "[[rules]]\nname = 's'\nwhen = 'signal_score'\nsignal = 'harm_poll'\n",
            source="p.toml",
            conditions=conditions,
        )
    policy = parse_policy(RULE, source="p.toml", conditions=conditions)
    assert [r.name for r in policy.rules] == ["a-rule"]
