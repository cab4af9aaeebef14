"""Harm polls through the whole scan: verdicts, actions, reasons, and the author's history."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from amber.engine import Engine, ScanResult, open_engine
from amber.errors import UserError
from amber.posts import read_input

POLL = {
    "id": "poll-1",
    "author": "armed_group",
    "created_at": "2016-05-01T12:00:00Z",
    "text": "Kill him or let him go? You have one hour to vote",
    "poll": {
        "question": "What should we do with him?",
        "options": ["Kill", "Let him go"],
        "closes_at": "2016-05-01T13:00:00Z",
    },
}


def scan(engine: Engine, path: Path) -> dict[str, ScanResult]:
    results = [r for r in engine.scan(read_input(path)) if isinstance(r, ScanResult)]
    return {r.post.id: r for r in results}


def test_harm_poll_is_restricted_frozen_escalated_and_explained(
    engine: Engine, write_posts: Callable[..., Path]
) -> None:
    result = scan(engine, write_posts([POLL]))["poll-1"]
    assert result.outcome.verdict == "restrict"
    assert result.outcome.actions == [
        "restrict",
        "review",
        "freeze_poll",
        "escalate:threat_to_life",
        "suspend_account",  # the author's account: a threat to life (docs/accounts.md)
    ]
    reason, account = result.outcome.reasons
    assert account.signal == "account" and account.label == "suspend_account"
    assert reason.signal == "harm_poll" and reason.label == "vote"
    assert reason.rule == "harm-poll" and reason.score is not None and reason.score >= 0.5
    assert "lang=en" in (reason.detail or "") and "Kill" in (reason.detail or "")


def test_vote_in_words_without_a_poll_is_restricted_without_freezing(
    engine: Engine, write_posts: Callable[..., Path]
) -> None:
    post = {"id": "t", "text": "👍 = we let the prisoner go, 👎 = he dies. You decide by tonight."}
    result = scan(engine, write_posts([post]))["t"]
    assert result.outcome.verdict == "restrict"
    assert "freeze_poll" not in result.outcome.actions
    assert "escalate:threat_to_life" in result.outcome.actions


def test_outcome_from_the_poll_author_is_restricted_even_in_the_same_scan(
    engine: Engine, write_posts: Callable[..., Path]
) -> None:
    results = scan(
        engine,
        write_posts(
            [
                POLL,
                {"id": "after", "author": "armed_group", "text": "As you wish, my followers."},
                {"id": "reply", "author": "fan", "reply_to": "poll-1", "text": "As you wish."},
                {"id": "elsewhere", "author": "genie", "text": "As you wish, my followers."},
            ]
        ),
    )
    for post_id in ("after", "reply"):
        outcome = results[post_id].outcome
        assert outcome.verdict == "restrict", post_id
        reason = next(r for r in outcome.reasons if r.rule == "harm-poll-outcome-after-poll")
        assert "'poll-1'" in (reason.detail or "")
        assert "escalate:threat_to_life" in outcome.actions
    assert results["elsewhere"].outcome.verdict == "allow"


def test_outcome_in_a_later_scan_sees_the_stored_poll(
    database: str, tmp_path: Path, write_posts: Callable[..., Path]
) -> None:
    db = database
    with open_engine(db=db, vault=tmp_path / "v") as first:
        scan(first, write_posts([POLL], name="one.jsonl"))
    with open_engine(db=db, vault=tmp_path / "v") as second:
        later = {"id": "after", "author": "armed_group", "text": "As you wish, my followers."}
        result = scan(second, write_posts([later], name="two.jsonl"))["after"]
    assert result.outcome.verdict == "restrict"


def test_harm_poll_with_a_bank_match_keeps_both_reasons(
    engine: Engine, photo_file: Callable[..., Path], write_posts: Callable[..., Path]
) -> None:
    image = photo_file(3)
    engine.banks.create("watch", action="review")
    engine.banks.add_files("watch", [image])
    engine.banks.create("known", action="remove")
    post = {**POLL, "media": [{"path": str(image)}]}
    result = scan(engine, write_posts([post]))["poll-1"]
    assert result.outcome.verdict == "restrict"  # at least restrict, though the bank says review
    assert {r.signal for r in result.outcome.reasons} >= {"harm_poll", "pdq", "sha256"}
    engine.banks.add_files("known", [image])
    again = scan(engine, write_posts([post]))["poll-1"]
    assert again.outcome.verdict == "remove"
    assert "freeze_poll" in again.outcome.actions and "remove" in again.outcome.actions


@pytest.mark.parametrize(
    "post",
    [
        {
            "text": "Should we kill the lights for the movie? Vote!",
            "poll": {"question": "Lights?", "options": ["Kill them", "Leave them"]},
        },
        {"text": "Poll: should the coach be fired or let go after this season?"},
        {
            "text": "Researchers studied an Instagram poll where a group asked followers to vote "
            "on killing a prisoner."
        },
        {"text": "Sign the petition: free the prisoners now!"},
    ],
)
def test_hard_negatives_are_allowed(
    engine: Engine, write_posts: Callable[..., Path], post: dict[str, object]
) -> None:
    result = scan(engine, write_posts([{"id": "n", **post}]))["n"]
    assert result.outcome.verdict == "allow", result.outcome.reasons


def test_threshold_comes_from_the_policy_file(
    database: str, tmp_path: Path, write_posts: Callable[..., Path]
) -> None:
    """The same borderline post is restricted or allowed by the policy's min_score alone."""
    post = {"id": "b", "text": "Kill him or let him go?"}
    verdicts = {}
    for min_score in (0.5, 0.95):
        policy = tmp_path / f"p{min_score}.toml"
        policy.write_text(
            "[[rules]]\nname = 'vote'\nwhen = 'signal_score'\nsignal = 'harm_poll'\n"
            f"values = ['vote']\nmin_score = {min_score}\nverdict = 'restrict'\n"
        )
        with open_engine(db=database, vault=tmp_path / "v", policy=policy) as engine:
            verdicts[min_score] = scan(engine, write_posts([post]))["b"].outcome.verdict
    assert verdicts == {0.5: "restrict", 0.95: "allow"}


def test_harm_poll_values_cannot_be_banked(engine: Engine) -> None:
    engine.banks.create("b")
    with pytest.raises(UserError, match="cannot be put in a bank"):
        engine.banks.import_csv("b", io.StringIO("harm_poll,vote\n"), source="x.csv")


def test_an_announcement_counts_only_after_the_poll(
    engine: Engine, write_posts: Callable[..., Path]
) -> None:
    """Creation times, not file order, decide what came first."""
    before = {
        "id": "before",
        "author": "armed_group",
        "created_at": "2016-05-01T11:00:00Z",
        "text": "As you wish, my followers.",
    }
    after = {**before, "id": "after", "created_at": "2016-05-01T13:05:00Z"}
    results = scan(engine, write_posts([before, POLL, after]))
    assert results["before"].outcome.verdict == "allow"
    assert results["after"].outcome.verdict == "restrict"
    rescanned = scan(engine, write_posts([before], name="again.jsonl"))
    assert rescanned["before"].outcome.verdict == "allow"  # the same answer every time


def test_a_removed_harm_poll_still_goes_to_a_person(
    engine: Engine, photo_file: Callable[..., Path], write_posts: Callable[..., Path]
) -> None:
    image = photo_file(4)
    engine.banks.create("known", action="remove")
    engine.banks.add_files("known", [image])
    result = scan(engine, write_posts([{**POLL, "media": [{"path": str(image)}]}]))["poll-1"]
    assert result.outcome.verdict == "remove" and "review" in result.outcome.actions
