"""Policy files: the default, overrides, precedence, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from amber.errors import PolicyError
from amber.matching import Match
from amber.policy import Findings, Verdict, load_policy, parse_policy


def match(
    bank: str = "b",
    action: str = "remove",
    distance: int = 4,
    signal: str = "pdq",
    label: str = "lbl",
) -> Match:
    return Match(
        signal_type=signal,
        bank=bank,
        action=action,
        label=label,
        entry_id=1,
        entry_source="x.png",
        distance=distance,
        quality=100,
        query_variant="original",
        entry_variant="original",
        media=0,
    )


def test_default_policy_maps_bank_action_to_verdict() -> None:
    policy = load_policy()
    assert policy.name == "default" and policy.pdq_min_quality == 50
    assert policy.decide(Findings()).verdict is Verdict.allow
    outcome = policy.decide(Findings(matches=[match(action="review")], media_paths=["a.png"]))
    assert outcome.verdict is Verdict.review and outcome.actions == ["review"]
    [reason] = outcome.reasons
    assert reason.to_json() == {
        "signal": "pdq",
        "bank": "b",
        "label": "lbl",
        "entry": 1,
        "distance": 4,
        "quality": 100,
        "detail": "entry 'x.png'",
        "media": "a.png",
        "rule": "bank-match",
    }


def test_strongest_verdict_wins_and_every_reason_is_kept() -> None:
    policy = load_policy()
    outcome = policy.decide(
        Findings(matches=[match("r", "review"), match("x", "remove"), match("s", "restrict")])
    )
    assert outcome.verdict is Verdict.remove
    assert outcome.actions == ["remove"]
    assert [r.bank for r in outcome.reasons] == ["r", "x", "s"]


CUSTOM = """
name = "strict"
[actions]
review = ["review"]
restrict = ["restrict", "review"]
remove = ["remove", "notify"]
[signals.pdq]
min_quality = 70
[[rules]]
name = "md5-only-review"
when = "bank_match"
signals = ["md5"]
verdict = "review"
[[rules]]
name = "close-pdq"
when = "bank_match"
signals = ["pdq"]
max_distance = 10
verdict = "remove"
actions = ["escalate:threat_to_life"]
"""


def test_custom_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(CUSTOM)
    policy = load_policy(path)
    assert policy.pdq_min_quality == 70 and policy.ref.startswith("strict@")
    near = policy.decide(Findings(matches=[match(distance=8, action="review")]))
    assert near.verdict is Verdict.remove
    assert near.actions == ["remove", "notify", "escalate:threat_to_life"]
    far = policy.decide(Findings(matches=[match(distance=20)]))
    assert far.verdict is Verdict.allow
    md5 = policy.decide(Findings(matches=[match(signal="md5", distance=0)]))
    assert md5.verdict is Verdict.review and md5.reasons[0].rule == "md5-only-review"


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("name = ", None, "invalid TOML"),
        ("name = 'x'", "rules", "at least one"),
        ("colour = 1\n[[rules]]\nname='a'\nwhen='bank_match'", "colour", "unknown key"),
        ("[[rules]]\nname='a'\nwhen='vibes'", "rules[0].when", "unknown condition"),
        ("[[rules]]\nname='a'\nwhen='bank_match'\nverdict='ban'", "rules[0].verdict", "unknown"),
        (
            "[[rules]]\nname='a'\nwhen='bank_match'\nsignal=['pdq']",
            "rules[0].signal",
            "unknown key",
        ),
        (
            "[[rules]]\nname='a'\nwhen='bank_match'\nsignals='pdq'",
            "rules[0].signals",
            "list of strings",
        ),
        (
            "[[rules]]\nname='a'\nwhen='bank_match'\n[[rules]]\nname='a'\nwhen='bank_match'",
            "rules[1].name",
            "used twice",
        ),
        (
            "[signals.pdq]\nmin_quality=101\n[[rules]]\nname='a'\nwhen='bank_match'",
            "signals.pdq.min_quality",
            "0 to 100",
        ),
        (
            "[signals.orb]\ncells=0\n[[rules]]\nname='a'\nwhen='bank_match'",
            "signals.orb.cells",
            "1 to 64",
        ),
        (
            "[signals.orb]\ncells=true\n[[rules]]\nname='a'\nwhen='bank_match'",
            "signals.orb.cells",
            "1 to 64",
        ),
        (
            "[signals.orb]\nnprobe=8\n[[rules]]\nname='a'\nwhen='bank_match'",
            "signals.orb.nprobe",
            "unknown setting",
        ),
        (
            "[signals.orb]\nalways='yes'\n[[rules]]\nname='a'\nwhen='bank_match'",
            "signals.orb.always",
            "true or false",
        ),
        (
            "[actions]\nban=['x']\n[[rules]]\nname='a'\nwhen='bank_match'",
            "actions.ban",
            "not a verdict",
        ),
        (  # a boolean is not a number (TOML false is not 0)
            "[[rules]]\nname='a'\nwhen='bank_match'\nmax_distance=false",
            "rules[0].max_distance",
            "got a boolean",
        ),
        (
            "[signals.pdq]\nmin_quality=true\n[[rules]]\nname='a'\nwhen='bank_match'",
            "signals.pdq.min_quality",
            "0 to 100",
        ),
    ],
)
def test_bad_policy_names_the_key(text: str, key: str | None, words: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.toml")
    assert info.value.key == key
    assert words in info.value.message and info.value.message.startswith("p.toml")


def test_unreadable_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.toml")
