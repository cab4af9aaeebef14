"""Harm polls in context: the follow-up to a flagged poll, by author, reply or the same
photo, within the policy's window; and the two tiers (review, restrict) of the policy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from amber.engine import Engine, ScanResult
from amber.errors import PolicyError
from amber.policy import Verdict, parse_policy
from amber.posts import read_input

POLL = {
    "id": "poll",
    "author": "grp",
    "created_at": "2026-03-01T10:00:00Z",
    "text": "Kill him or let him go? You have one hour to vote",
}


def scan(engine: Engine, path: Path) -> dict[str, ScanResult]:
    return {r.post.id: r for r in engine.scan(read_input(path)) if isinstance(r, ScanResult)}


def rules(result: ScanResult) -> set[str]:
    return {r.rule for r in result.outcome.reasons}


def test_a_reply_in_an_unknown_language_goes_to_review(
    engine: Engine, write_posts: Callable[..., Path]
) -> None:
    # words amber has no lexicon for, and no harm word it knows: the reply still counts
    follow = {
        "id": "f",
        "author": "grp",
        "reply_to": "poll",
        "created_at": "2026-03-01T12:00:00Z",
        "text": "Zrobione. Dziękujemy za głosy.",
    }
    results = scan(engine, write_posts([POLL, follow]))
    assert results["poll"].outcome.verdict is Verdict.restrict
    outcome = results["f"].outcome
    assert outcome.verdict.rank >= Verdict.review.rank
    assert "harm-poll-follow-up" in rules(results["f"])
    reason = next(r for r in outcome.reasons if r.rule == "harm-poll-follow-up")
    assert "replies to 'poll'" in (reason.detail or "")


def test_a_photo_alone_from_the_poll_author_goes_to_review(
    engine: Engine, write_posts: Callable[..., Path], photo_file: Callable[..., Path]
) -> None:
    image = photo_file(7)
    later = {
        "id": "photo-only",
        "author": "grp",
        "created_at": "2026-03-02T09:00:00Z",
        "media": [{"path": str(image)}],
    }
    results = scan(engine, write_posts([POLL, later]))
    assert results["photo-only"].outcome.verdict is Verdict.review
    assert rules(results["photo-only"]) == {"harm-poll-follow-up"}


def test_an_announcement_with_the_polls_photo_from_another_account_is_restricted(
    engine: Engine, write_posts: Callable[..., Path], photo_file: Callable[..., Path]
) -> None:
    captive = photo_file(11, name="captive.jpg", quality=95)
    repost = photo_file(11, name="repost.jpg", quality=60)  # the same photo, re-encoded
    other = photo_file(12, name="other.jpg")
    poll = {**POLL, "media": [{"path": str(captive)}]}
    same = {
        "id": "same",
        "author": "fan-account",
        "created_at": "2026-03-01T13:00:00Z",
        "text": "As you wished.",
        "media": [{"path": str(repost)}],
    }
    different = {**same, "id": "different", "media": [{"path": str(other)}]}
    results = scan(engine, write_posts([poll, same, different]))
    assert results["same"].outcome.verdict is Verdict.restrict
    reason = next(
        r for r in results["same"].outcome.reasons if r.rule == "harm-poll-outcome-after-poll"
    )
    assert "same photo as 'poll'" in (reason.detail or "")
    assert results["different"].outcome.verdict is Verdict.allow


def test_context_ends_after_the_rules_window(
    engine: Engine, write_posts: Callable[..., Path]
) -> None:
    late = {
        "id": "late",
        "author": "grp",
        "created_at": "2026-03-20T10:00:00Z",  # 19 days on: past the week of the rules
        "text": "As you wished, my followers.",
    }
    results = scan(engine, write_posts([POLL, late]))
    assert results["late"].outcome.verdict is Verdict.allow


def test_the_follow_up_of_a_post_that_was_allowed_is_allowed(
    engine: Engine, write_posts: Callable[..., Path]
) -> None:
    fine = {"id": "fine", "author": "grp", "text": "Pizza or pasta tonight?"}
    after = {"id": "after", "author": "grp", "reply_to": "fine", "text": "Pizza won!"}
    results = scan(engine, write_posts([fine, after]))
    assert results["after"].outcome.verdict is Verdict.allow


POLICY = """
name = "tiers"
[[rules]]
name = "strong"
when = "signal_score"
signal = "harm_poll"
values = ["vote"]
min_score = 0.9
verdict = "restrict"
[[rules]]
name = "weak"
when = "signal_score"
signal = "harm_poll"
values = ["vote"]
min_score = {low}
max_score = 0.9
verdict = "review"
"""


def test_both_tiers_come_from_the_policy_file(
    database: str, tmp_path: Path, write_posts: Callable[..., Path]
) -> None:
    from amber.engine import open_engine

    policy = tmp_path / "tiers.toml"
    policy.write_text(POLICY.replace("{low}", "0.1"), encoding="utf-8")
    posts = write_posts(
        [
            {"id": "clear", **{k: v for k, v in POLL.items() if k != "id"}},
            {"id": "weaker", "text": "Should the traitor die? Vote."},
        ]
    )
    with open_engine(db=database, vault=tmp_path / "v", policy=policy) as engine:
        results = scan(engine, posts)
    assert results["clear"].outcome.verdict is Verdict.restrict
    assert rules(results["clear"]) == {"strong"}  # max_score keeps the tiers apart
    assert results["weaker"].outcome.verdict is Verdict.review
    assert rules(results["weaker"]) == {"weak"}


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ("max_score = 0.9", "rules[1].max_score"),  # not above min_score 0.95
        ('related = ["friends"]', "rules[0].related"),
        ("within_hours = -1", "rules[0].within_hours"),
    ],
)
def test_bad_tier_and_context_options_name_the_key(change: str, key: str) -> None:
    text = f"""
[[rules]]
name = "ctx"
when = "follows_signal"
signal = "harm_poll"
{change if not change.startswith("max") else ""}
[[rules]]
name = "tier"
when = "signal_score"
signal = "harm_poll"
min_score = 0.95
{change if change.startswith("max") else ""}
"""
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.toml")
    assert key in str(info.value)
