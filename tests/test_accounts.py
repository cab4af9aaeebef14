"""Accounts: every decision tied to its author; strikes that decay (an injected clock),
thresholds that recommend restrict_account and suspend_account as an action the
decision's webhook carries, a threat to life at once, a reviewer's rejection taking a
strike back, the repeat-offender condition feeding the post policy; the account view in
the library, the CLI, the API and the console; policy errors naming the key."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.engine import Engine, ScanResult, open_engine
from amber.errors import ConflictError, NotFoundError, PolicyError
from amber.policy import Verdict, parse_policy
from amber.posts import parse_post, read_input
from amber.tokens import parse_scopes
from conftest import CliResult, Clock

SECRET = "whsec-" + "0123456789abcdef" * 2
POLL = {
    "text": "Kill him or let him go? You have one hour to vote",
    "poll": {"question": "What should we do with him?", "options": ["Kill", "Let him go"]},
}
#: A harm-poll text of the review tier (score 0.25 to 0.5): a person looks, nothing hidden.
WEAK_POLL = "Should we let him live? Vote in the comments"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(database: str, tmp_path: Path, clock: Clock) -> Iterator[Engine]:
    with open_engine(db=database, vault=tmp_path / "vault", clock=clock) as eng:
        eng.banks.create("hide", action="restrict", label="violent-extremism")
        eng.banks.create("known", action="remove", label="execution-photo")
        yield eng


def decide(engine: Engine, post: dict[str, object], client: str = "_local") -> ScanResult:
    """Decide one post (its media paths absolute)."""
    return engine.decide_post(parse_post(post, base=Path("."), source="test"), client=client)


def banked(engine: Engine, photo_file: Callable[..., Path], bank: str, seed: int) -> Path:
    path = photo_file(seed, f"{bank}-{seed}.png")
    engine.banks.add_files(bank, [path])
    return path


def test_every_decision_is_tied_to_its_author_and_counted(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    hidden = banked(engine, photo_file, "hide", 1)
    removed = banked(engine, photo_file, "known", 2)
    decide(engine, {"id": "a1", "author": "group", "media": [{"path": str(hidden)}]})
    decide(engine, {"id": "a2", "author": "group", "media": [{"path": str(removed)}]})
    decide(engine, {"id": "a3", "author": "group", "text": "hello"})
    decide(engine, {"id": "b1", "author": "group", "text": "hello"}, client="other-platform")
    account = engine.accounts.show("group", client="_local")
    record = account.to_json()
    assert record["author"] == "group" and record["client"] == "_local"
    assert record["verdicts"] == {"allow": 1, "review": 0, "restrict": 1, "remove": 1}
    assert record["posts"] == 3
    assert record["strikes"] == pytest.approx(3.0)  # restrict 1 + remove 2, no time passed
    assert record["strike_posts"] == 2
    assert [d["post_id"] for d in record["decisions"]] == ["a3", "a2", "a1"]
    a2 = record["decisions"][1]
    assert a2["verdict"] == "remove" and a2["strike"] == pytest.approx(2.0)
    assert a2["links"] == {
        "decision": "/v1/decisions/a2?client=_local",
        "statements": "/v1/statements/a2?client=_local",
        "console": "/console/items/a2",
    }
    # Another client's author of the same name is someone else.
    other = engine.accounts.show("group", client="other-platform").to_json()
    assert other["posts"] == 1 and other["strikes"] == 0
    with pytest.raises(ConflictError, match="posted as clients '_local', 'other-platform'"):
        engine.accounts.show("group")
    with pytest.raises(NotFoundError, match="no decided post has author 'nobody'"):
        engine.accounts.show("nobody")


def test_strikes_decay_with_their_half_life_and_end_with_the_window(
    engine: Engine, photo_file: Callable[..., Path], clock: Clock
) -> None:
    removed = banked(engine, photo_file, "known", 2)
    decide(engine, {"id": "p", "author": "slow", "media": [{"path": str(removed)}]})
    assert engine.accounts.standing("slow", client="_local").strikes == pytest.approx(2.0)
    clock.advance(days=90)  # one half-life
    assert engine.accounts.standing("slow", client="_local").strikes == pytest.approx(1.0)
    clock.advance(days=90)
    assert engine.accounts.standing("slow", client="_local").strikes == pytest.approx(0.5)
    assert [a.author for a in engine.accounts.with_strikes()] == ["slow"]
    clock.advance(days=186)  # 366 days: out of the one-year window
    assert engine.accounts.standing("slow", client="_local").strikes == 0
    assert engine.accounts.with_strikes() == []


def test_thresholds_recommend_account_actions_that_the_webhook_carries(
    engine: Engine, photo_file: Callable[..., Path], clock: Clock
) -> None:
    engine.webhooks.add("https://platform.example/amber", secret=SECRET, events="decision")
    seeds = [banked(engine, photo_file, "hide", seed) for seed in (11, 12, 13)]
    actions = []
    for i, path in enumerate(seeds):
        result = decide(
            engine, {"id": f"h{i}", "author": "spreader", "media": [{"path": str(path)}]}
        )
        actions.append(result.outcome.actions)
    # Strikes 1, 2, 3 (no time passes): the third reaches restrict_account's threshold of 3.
    assert actions[0] == ["restrict", "review"] and actions[1] == ["restrict", "review"]
    assert actions[2] == ["restrict", "review", "restrict_account"]
    stored = engine.decisions.get("h2")
    [why] = [r for r in stored.reasons if r["signal"] == "account"]
    assert why["label"] == "restrict_account" and why["rule"] == "accounts"
    assert "3.00 strikes with this post reach restrict_account's threshold of 3" in why["detail"]
    [delivery] = engine.webhooks.deliveries(post_id="h2", event="decision")
    body = json.loads(delivery.body)
    assert "restrict_account" in body["actions"]
    assert engine.accounts.summary("spreader", client="_local").recommendation == (
        "restrict_account"
    )
    removed = [banked(engine, photo_file, "known", seed) for seed in (21, 22)]
    last = None
    for i, path in enumerate(removed):
        last = decide(engine, {"id": f"r{i}", "author": "spreader", "media": [{"path": str(path)}]})
    assert last is not None and last.outcome.actions == ["remove", "suspend_account"]  # 3+2+2
    # A post that is no strike recommends nothing, whatever the record.
    calm = decide(engine, {"id": "calm", "author": "spreader", "text": "good morning"})
    assert calm.outcome.actions == []


def test_a_threat_to_life_recommends_suspension_at_once(engine: Engine) -> None:
    result = decide(engine, {"id": "poll", "author": "armed_group", **POLL})
    assert result.outcome.verdict is Verdict.restrict
    assert result.outcome.actions == [
        "restrict",
        "review",
        "freeze_poll",
        "escalate:threat_to_life",
        "suspend_account",
    ]
    [why] = [r for r in result.outcome.reasons if r.signal == "account"]
    assert "a threat to life recommends it at once" in (why.detail or "")
    summary = engine.accounts.summary("armed_group", client="_local")
    assert summary.threats == 1 and summary.recommendation == "suspend_account"
    # Without an author there is no account to act on.
    anonymous = decide(engine, {"id": "anon", **POLL})
    assert "suspend_account" not in anonymous.outcome.actions


def test_a_reviewers_rejection_takes_the_strike_back(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    hidden = banked(engine, photo_file, "hide", 1)
    decide(engine, {"id": "maybe", "author": "unlucky", "media": [{"path": str(hidden)}]})
    assert engine.accounts.standing("unlucky", client="_local").strikes == pytest.approx(1.0)
    engine.review.lock("maybe", "rita")
    engine.review.decide("maybe", "rita", "reject", reason="a news report, not propaganda")
    assert engine.accounts.standing("unlucky", client="_local").strikes == 0
    assert engine.accounts.show("unlucky").history[0].strike == 0


def test_a_repeat_offender_needs_less_to_be_restricted(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    hidden = banked(engine, photo_file, "hide", 1)
    decide(engine, {"id": "first", "author": "group", "media": [{"path": str(hidden)}]})
    clean = decide(engine, {"id": "c", "author": "newcomer", "text": WEAK_POLL})
    again = decide(engine, {"id": "g", "author": "group", "text": WEAK_POLL})
    assert clean.outcome.verdict is Verdict.review  # the review tier of the harm-poll rules
    assert again.outcome.verdict is Verdict.restrict
    [why] = [r for r in again.outcome.reasons if r.rule == "harm-poll-repeat-offender"]
    assert why.signal == "harm_poll" and why.label == "vote"
    assert "author 'group' has 1.00 strikes from 1 earlier post" in (why.detail or "")
    assert "escalate:threat_to_life" in again.outcome.actions


def test_a_policy_without_accounts_recommends_nothing(engine: Engine, tmp_path: Path) -> None:
    text = (
        'name = "plain"\n[actions]\nrestrict = ["restrict"]\n'
        '[[rules]]\nname = "p"\nwhen = "signal_score"\nsignal = "harm_poll"\nverdict = "restrict"\n'
        'actions = ["escalate:threat_to_life"]\n'
    )
    (tmp_path / "plain.toml").write_text(text, encoding="utf-8")
    with open_engine(
        db=engine.db.url.render_as_string(hide_password=False),
        vault=tmp_path / "vault",
        policy=tmp_path / "plain.toml",
    ) as plain:
        result = plain.decide_post(parse_post({"id": "x", "author": "a", **POLL}, base=tmp_path))
    assert result.outcome.actions == ["restrict", "escalate:threat_to_life"]


@pytest.mark.parametrize(
    ("table", "key", "message"),
    [
        ("half_life_days = -1", "accounts.half_life_days", "number of days more than 0"),
        ("window = 3", "accounts.window", "unknown key"),
        ("strikes = { maybe = 1 }", "accounts.strikes.maybe", "not a verdict"),
        ("thresholds = { ban_account = 3 }", "accounts.thresholds.ban_account", "unknown action"),
        ('threat_to_life = "restrict"', "accounts.threat_to_life", "account actions"),
        (
            "thresholds = { restrict_account = 0 }",
            "accounts.thresholds.restrict_account",
            "more than 0",
        ),
    ],
)
def test_a_bad_accounts_table_names_its_key(table: str, key: str, message: str) -> None:
    text = f'name = "p"\n[[rules]]\nname = "r"\nwhen = "media_unreadable"\n[accounts]\n{table}\n'
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="p.toml")
    assert f"key {key!r}" in str(caught.value) and message in str(caught.value)


def test_repeat_offender_options_are_checked() -> None:
    text = 'name = "p"\n[[rules]]\nname = "r"\nwhen = "repeat_offender"\nmin_strikes = 0\n'
    with pytest.raises(PolicyError, match=r"rules\[0\]\.min_strikes.*strikes > 0"):
        parse_policy(text, source="p.toml")
    text = 'name = "p"\n[[rules]]\nname = "r"\nwhen = "repeat_offender"\nmin_score = 0.3\n'
    with pytest.raises(PolicyError, match=r"rules\[0\]\.signal.*need a signal"):
        parse_policy(text, source="p.toml")


def test_the_account_on_the_command_line(
    amber_cli: Callable[..., CliResult],
    write_posts: Callable[..., Path],
    photo_file: Callable[..., Path],
) -> None:
    hidden = photo_file(1)
    assert amber_cli("bank", "create", "hide", "--action", "restrict").returncode == 0
    assert amber_cli("bank", "add", "hide", hidden).returncode == 0
    posts = write_posts(
        [
            {"id": "p1", "author": "group", "media": [{"path": str(hidden)}]},
            {"id": "p2", "author": "group", "text": "hello"},
            {"id": "p3", "author": "someone", "text": "hi"},
        ]
    )
    assert amber_cli("scan", posts).returncode == 0
    shown = amber_cli("account", "show", "group", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["verdicts"]["restrict"] == 1 and record["posts"] == 2
    assert [d["post_id"] for d in record["decisions"]] == ["p2", "p1"]
    table = amber_cli("account", "show", "group")
    assert table.returncode == 0 and "strikes" in table.stdout and "p1" in table.stdout
    listed = amber_cli("account", "list", "--format", "jsonl")
    assert [json.loads(line)["author"] for line in listed.stdout.splitlines()] == ["group"]
    missing = amber_cli("account", "show", "nobody")
    assert missing.returncode == 2
    assert missing.stderr.startswith("Error: no decided post has author 'nobody'")
    assert "Traceback" not in missing.stderr
    bad = amber_cli("account", "show", "group", "--format", "xml")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_the_account_in_the_api_is_scoped_to_the_token(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    hidden = banked(engine, photo_file, "hide", 1)
    ingest = engine.tokens.create("platform", parse_scopes("ingest"))[1]
    other = engine.tokens.create("elsewhere", parse_scopes("ingest"))[1]
    with TestClient(create_app(engine, sweep_every=None, deliver_every=None)) as client:
        posted = client.post(
            "/v1/posts/upload",
            headers={"authorization": f"Bearer {ingest}"},
            data={"post": json.dumps({"id": "u1", "author": "group"})},
            files=[("media", ("photo.png", hidden.read_bytes(), "image/png"))],
        )
        assert posted.status_code == 200, posted.text
        answer = client.get("/v1/accounts/group", headers={"authorization": f"Bearer {ingest}"})
        assert answer.status_code == 200, answer.text
        account = answer.json()
        assert account["client"] == "platform" and account["verdicts"]["restrict"] == 1
        assert account["decisions"][0]["links"]["decision"] == "/v1/decisions/u1?client=platform"
        listed = client.get("/v1/accounts", headers={"authorization": f"Bearer {ingest}"})
        assert [a["author"] for a in listed.json()] == ["group"]
        hidden_from = client.get("/v1/accounts/group", headers={"authorization": f"Bearer {other}"})
        assert hidden_from.status_code == 404
        assert hidden_from.json()["error"]["message"] == "no decided post has author 'group'"
        assert client.get("/v1/accounts", headers={"authorization": f"Bearer {other}"}).json() == []
        assert client.get("/v1/accounts/group").status_code == 401


def test_the_console_shows_the_authors_account_beside_the_item(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    hidden = banked(engine, photo_file, "hide", 1)
    decide(engine, {"id": "old", "author": "group", "media": [{"path": str(hidden)}]})
    decide(engine, {"id": "new", "author": "group", **POLL})
    reviewer = engine.tokens.create("rita", parse_scopes("review"))[1]
    with TestClient(
        create_app(engine, sweep_every=None, deliver_every=None), follow_redirects=False
    ) as client:
        signed = client.post("/console/sign-in", data={"token": reviewer})
        assert signed.status_code == 303
        page = client.get("/console/items/new")
        assert page.status_code == 200
        text = page.text
    assert 'id="account"' in text and "Account: group" in text
    assert "2.00 strikes" in text  # 'old' and the poll itself, both restricted
    assert "Recommends: <b>suspend_account</b>" in text  # the poll is a threat to life
    assert 'href="/console/items/old"' in text


def test_scanning_many_posts_of_one_author_in_one_batch_counts_each(
    engine: Engine, photo_file: Callable[..., Path], write_posts: Callable[..., Path]
) -> None:
    paths = [banked(engine, photo_file, "hide", seed) for seed in (31, 32, 33)]
    posts = write_posts(
        [
            {"id": f"b{i}", "author": "batch", "media": [{"path": str(p)}]}
            for i, p in enumerate(paths)
        ]
    )
    results = [r for r in engine.scan(read_input(posts)) if isinstance(r, ScanResult)]
    assert [("restrict_account" in r.outcome.actions) for r in results] == [False, False, True]
