"""Statements of reasons (DSA Art. 17) in the DSA Transparency Database's schema: made from
real decisions (harm polls, banked images, reviewers' outcomes, removal orders) on SQLite and
PostgreSQL, read through the library, ``GET /v1/statements`` and ``amber statements``; every
statement is checked against ``statements_schema.json`` with jsonschema itself."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.dsa import BATCH_SIZE, StatementSchemaError, check_batch
from amber.engine import Engine, open_engine
from amber.errors import ConflictError, NotFoundError, PolicyError, UserError
from amber.evidence.acts import RemovalOrder
from amber.policy import Verdict, load_policy, parse_policy
from amber.policy.statements import StatementSettings
from amber.posts import read_input
from amber.statements import (
    Act,
    ActKind,
    DecidedPost,
    Statement,
    Statements,
    batches,
    content_types,
    parse_range,
    puid,
    statements_for,
)
from amber.synthetic import photo
from amber.tokens import parse_scopes
from conftest import CliResult, run_cli

SCHEMA = json.loads(
    (Path(__file__).resolve().parent.parent / "src" / "amber" / "statements_schema.json").read_text(
        encoding="utf-8"
    )
)
BATCH = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
ONE = jsonschema.Draft202012Validator(
    {"$defs": SCHEMA["$defs"], "$ref": "#/$defs/statement"},
    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
)

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
VOTE_IN_WORDS = {
    "id": "words",
    "author": "someone",
    "text": "👍 = we let the prisoner go, 👎 = he dies. You decide by tonight.",
}
DAY1 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
DAY3 = DAY1 + timedelta(days=2)


def valid(statement: Mapping[str, Any]) -> Mapping[str, Any]:
    """``statement``, after checking it against the schema file with jsonschema."""
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in ONE.iter_errors(statement)]
    assert errors == [], errors
    return statement


def valid_batch(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in BATCH.iter_errors(body)]
    assert errors == [], errors
    puids = [s["puid"] for s in body["statements"]]
    assert len(puids) == len(set(puids))
    return [valid(s) for s in body["statements"]]


class Clock:
    """The engine's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Case:
    engine: Engine
    clock: Clock
    folder: Path
    database: str

    def scan(self, posts: list[dict[str, Any]], name: str = "posts.jsonl") -> dict[str, str]:
        path = self.folder / name
        path.write_text("".join(json.dumps(p) + "\n" for p in posts), encoding="utf-8")
        results = list(self.engine.scan(read_input(path)))
        return {r.post.id: r.outcome.verdict.value for r in results if hasattr(r, "outcome")}

    def review(self, post_id: str, outcome: str, action: str | None = None) -> None:
        self.engine.review.lock(post_id, "carol")
        self.engine.review.decide(post_id, "carol", outcome, reason="checked", action=action)

    def statements(self, post_id: str) -> list[Statement]:
        found = Statements.of(self.engine).for_post(post_id)
        for s in found:
            valid(s.to_submission())
        return found


@pytest.fixture
def case(database: str, tmp_path: Path) -> Iterator[Case]:
    """An engine on a clock that starts at DAY1, with a bank of one photo (label
    ``execution-photo``, remove) and a bank for a person to look at (``news-footage``)."""
    clock = Clock(DAY1)
    with open_engine(db=database, vault=tmp_path / "vault", clock=clock) as engine:
        images = tmp_path / "images"
        images.mkdir()
        photo(50, 640, 480).save(images / "known.png")
        photo(50, 640, 480).save(images / "copy.png")
        photo(7, 640, 480).save(images / "footage.png")
        engine.banks.create("known", label="execution-photo")
        engine.banks.add_files("known", [images / "known.png"])
        engine.banks.create("footage", action="review", label="news-footage")
        engine.banks.add_files("footage", [images / "footage.png"])
        yield Case(engine, clock, tmp_path, database)


# -- statements from real decisions ------------------------------------------------------


def test_a_harm_poll_and_a_banked_image_each_get_a_statement(case: Case) -> None:
    verdicts = case.scan(
        [
            POLL,
            {"id": "copy", "author": "ann", "media": [{"path": "images/copy.png"}]},
            {"id": "hello", "author": "bob", "text": "hello"},
        ]
    )
    assert verdicts == {"poll-1": "restrict", "copy": "remove", "hello": "allow"}

    [poll] = case.statements("poll-1")
    assert poll.status == "in_force" and poll.basis == "scan" and poll.decided_at == DAY1
    fields = poll.fields
    assert fields["decision_visibility"] == [
        "DECISION_VISIBILITY_CONTENT_DISABLED",
        "DECISION_VISIBILITY_CONTENT_INTERACTION_RESTRICTED",  # the poll was frozen
    ]
    assert fields["category"] == "STATEMENT_CATEGORY_VIOLENCE"
    assert fields["category_specification"] == ["KEYWORD_INCITEMENT_VIOLENCE_HATRED"]
    assert fields["content_type"] == ["CONTENT_TYPE_TEXT"]
    assert fields["content_date"] == "2016-05-01" and fields["application_date"] == "2026-12-01"
    assert fields["automated_detection"] == "Yes"
    assert fields["automated_decision"] == "AUTOMATED_DECISION_FULLY"
    assert fields["source_type"] == "SOURCE_VOLUNTARY"
    assert fields["decision_ground"] == "DECISION_GROUND_INCOMPATIBLE_CONTENT"
    assert fields["incompatible_content_ground"] == StatementSettings().terms_ground
    assert "vote on whether a person is harmed or killed" in fields["decision_facts"]
    assert "poll frozen" in fields["decision_facts"]
    assert fields["territorial_scope"] == sorted(fields["territorial_scope"])
    assert {"DE", "NO", "IS", "LI"} <= set(fields["territorial_scope"])
    assert "end_date_visibility_restriction" not in fields
    assert poll.puid == fields["puid"] and poll.puid.startswith("poll-1-v1-scan-restrict-")
    # No personal data: not the author, not the post's words (reasons' details quote them).
    text = json.dumps(fields)
    assert "armed_group" not in text and "Kill him" not in text and "carol" not in text

    [copy] = case.statements("copy")
    assert copy.fields["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_REMOVED"]
    assert copy.fields["content_type"] == ["CONTENT_TYPE_IMAGE"]
    assert copy.fields["content_date"] == "2026-12-01"  # the post gave no time: first seen
    assert copy.fields["category"] == "STATEMENT_CATEGORY_VIOLENCE"  # the default category
    assert "hash bank 'known', labelled 'execution-photo'" in copy.fields["decision_facts"]
    assert "removed automatically" in copy.fields["decision_facts"]

    with pytest.raises(NotFoundError, match="'hello' has no statement of reasons"):
        Statements.of(case.engine).for_post("hello")
    with pytest.raises(NotFoundError, match="no decision for post 'nope'"):
        Statements.of(case.engine).for_post("nope")


def test_a_confirmation_supersedes_and_a_reject_reverses(case: Case) -> None:
    case.scan([POLL, VOTE_IN_WORDS, {"id": "footage", "media": [{"path": "images/footage.png"}]}])
    case.clock.now = DAY2
    case.review("poll-1", "confirm", "remove")
    case.review("words", "reject")
    case.review("footage", "confirm", "keep_restricted")

    first, second = case.statements("poll-1")
    assert (first.basis, first.status) == ("scan", "superseded")
    assert (second.basis, second.status, second.decided_at) == ("review", "in_force", DAY2)
    assert second.puid != first.puid and "-review-" in second.puid
    assert second.fields["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_REMOVED"]
    assert second.fields["automated_decision"] == "AUTOMATED_DECISION_PARTIALLY"
    assert second.fields["application_date"] == "2026-12-02"
    assert (
        "A reviewer reviewed the content, confirmed the finding and removed it"
        in (second.fields["decision_facts"])
    )
    # A statement never changes once made: the first is as it was.
    assert first.fields["decision_visibility"][0] == "DECISION_VISIBILITY_CONTENT_DISABLED"

    [words] = case.statements("words")
    assert words.status == "reversed" and words.ended_at == DAY2
    assert words.fields["end_date_visibility_restriction"] == "2026-12-02"
    assert words.fields["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_DISABLED"]

    # A review verdict stays up: only the reviewer's decision restricts it.
    [footage] = case.statements("footage")
    assert footage.basis == "review" and footage.status == "in_force"
    assert footage.fields["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_DISABLED"]
    assert "kept it hidden" in footage.fields["decision_facts"]


def test_a_removal_order_is_illegal_content_under_the_tco_regulation(case: Case) -> None:
    case.scan([{"id": "plain", "text": "a post amber allowed"}, POLL])
    case.clock.now = DAY2
    for post_id in ("plain", "poll-1"):
        case.engine.acts.removal_order(
            post_id, RemovalOrder("ref-1", "an authority", "TCO Art. 3"), sent_by="admin"
        )
        case.review(post_id, "confirm", "remove")

    [plain] = case.statements("plain")
    fields = plain.fields
    assert fields["source_type"] == "SOURCE_TYPE_OTHER_NOTIFICATION"
    assert fields["decision_ground"] == "DECISION_GROUND_ILLEGAL_CONTENT"
    assert "Regulation (EU) 2021/784" in fields["illegal_content_legal_ground"]
    assert (
        fields["decision_ground_reference_url"] == "https://eur-lex.europa.eu/eli/reg/2021/784/oj"
    )
    assert fields["category"] == "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY"
    assert fields["category_specification"] == ["KEYWORD_TERRORIST_CONTENT"]
    assert "incompatible_content_ground" not in fields
    # Nothing automated found it and a person decided.
    assert fields["automated_detection"] == "No"
    assert fields["automated_decision"] == "AUTOMATED_DECISION_NOT_AUTOMATED"
    assert (
        "removal order" in fields["decision_facts"]
        and "an authority" not in fields["decision_facts"]
    )

    scan, ordered = case.statements("poll-1")
    assert scan.fields["source_type"] == "SOURCE_VOLUNTARY"  # amber's own, before the order
    assert ordered.fields["source_type"] == "SOURCE_TYPE_OTHER_NOTIFICATION"
    assert ordered.fields["category_addition"] == ["STATEMENT_CATEGORY_VIOLENCE"]
    assert ordered.fields["category_specification"] == [
        "KEYWORD_TERRORIST_CONTENT",
        "KEYWORD_INCITEMENT_VIOLENCE_HATRED",
    ]
    assert ordered.fields["automated_detection"] == "Yes"
    assert ordered.fields["automated_decision"] == "AUTOMATED_DECISION_PARTIALLY"


def test_new_content_under_a_post_id_supersedes_the_last_statement(case: Case) -> None:
    case.scan([POLL])
    case.clock.now = DAY2
    case.review("poll-1", "confirm", "keep_restricted")
    case.clock.now = DAY3
    case.scan([{**POLL, "text": "Kill him or let him go? Vote now", "id": "poll-1"}], "v2.jsonl")

    found = case.statements("poll-1")
    assert [(s.version, s.basis, s.status) for s in found] == [
        (1, "scan", "superseded"),
        (1, "review", "superseded"),
        (2, "scan", "in_force"),
    ]
    assert len({s.puid for s in found}) == 3 and found[2].decided_at == DAY3
    # The reviewer's outcome belongs to the version it was given on.
    assert found[1].puid.startswith("poll-1-v1-review-")


def test_batches_hold_the_statements_decided_in_a_range(case: Case) -> None:
    case.scan([POLL, {"id": "copy", "media": [{"path": "images/copy.png"}]}])
    case.clock.now = DAY2
    case.review("poll-1", "confirm", "remove")
    store = Statements.of(case.engine)

    day1 = store.batches(*parse_range("2026-12-01", "2026-12-01"))
    assert [s["puid"][:8] for b in day1 for s in valid_batch(b)] == ["copy-v1-", "poll-1-v"]
    day2 = store.batches(*parse_range("2026-12-02", "2026-12-02"))
    [[review]] = [valid_batch(b) for b in day2]
    assert "-review-" in review["puid"]
    both = store.between(*parse_range("2026-12-01", "2026-12-02"))
    assert [s.decided_at for s in both] == [DAY1, DAY1, DAY2]
    assert store.batches(*parse_range("2026-12-03", "2026-12-31")) == []
    assert store.between(DAY1, DAY2, clients=["someone-else"]) == []
    with pytest.raises(UserError, match="has no time zone"):
        store.between(datetime(2026, 12, 1), DAY2)


# -- configuration --------------------------------------------------------------------


def test_the_built_in_policy_writes_out_the_defaults() -> None:
    assert load_policy().statements == StatementSettings()


POLICY = """
name = "p"
[actions]
remove = ["remove"]
[[rules]]
name = "bank-match"
when = "bank_match"
verdict = "bank"
"""


def _policy(statements: str) -> StatementSettings:
    return parse_policy(POLICY + statements, source="p.toml").statements


def test_the_statements_table_is_read_and_checked() -> None:
    settings = _policy(
        """
[statements]
territorial_scope = ["DE", "AT"]
ground = "DECISION_GROUND_ILLEGAL_CONTENT"
legal_ground = "Strafgesetzbuch § 131"
reference_url = "https://example.org/law"
account_type = "ACCOUNT_TYPE_PRIVATE"
category = "STATEMENT_CATEGORY_OTHER_VIOLATION_TC"
[statements.labels.execution-photo]
category = "STATEMENT_CATEGORY_VIOLENCE"
keywords = ["KEYWORD_COORDINATED_HARM"]
"""
    )
    assert settings.territorial_scope == ("AT", "DE")
    assert settings.labels["execution-photo"].keywords == ("KEYWORD_COORDINATED_HARM",)
    assert "terrorism" not in settings.labels  # a table given replaces the default one
    assert settings.signals == StatementSettings().signals
    assert _policy('[statements]\nterritorial_scope = "EU"').territorial_scope[-1] == "SK"
    assert "NO" not in _policy('[statements]\nterritorial_scope = "EU"').territorial_scope

    for text, key in (
        ('territorial_scope = ["DE", "US"]', "statements.territorial_scope"),
        ('category = "STATEMENT_CATEGORY_SPAM"', "statements.category"),
        ('ground = "DECISION_GROUND_ILLEGAL_CONTENT"', "statements.legal_ground"),
        ('reference_url = "example.org"', "statements.reference_url"),
        ('account_type = "ACCOUNT_TYPE_ROBOT"', "statements.account_type"),
        ('terms_ground = ""', "statements.terms_ground"),
        ("colour = 1", "statements.colour"),
        (
            '[statements.signals]\nharm_poll = { category = "STATEMENT_CATEGORY_VIOLENCE", '
            'keywords = ["KEYWORD_NOPE"] }',
            "statements.signals.harm_poll.keywords",
        ),
    ):
        with pytest.raises(PolicyError) as caught:
            _policy("[statements]\n" + text)
        assert caught.value.key == key, text


def test_the_settings_shape_every_statement(case: Case) -> None:
    case.engine.banks.create("tco", label="terrorism")
    case.engine.banks.add_files("tco", [case.folder / "images" / "copy.png"])
    case.scan([{"id": "copy", "media": [{"path": "images/copy.png"}]}])
    settings = _policy(
        '[statements]\nground = "DECISION_GROUND_ILLEGAL_CONTENT"\nlegal_ground = "A law"\n'
        'territorial_scope = ["FR"]\naccount_type = "ACCOUNT_TYPE_BUSINESS"\n'
        'reference_url = "https://example.org/law"'
    )
    [statement] = Statements(case.engine.db, settings).for_post("copy")
    fields = valid(statement.fields)
    assert (
        fields["territorial_scope"] == ["FR"] and fields["account_type"] == "ACCOUNT_TYPE_BUSINESS"
    )
    assert fields["decision_ground"] == "DECISION_GROUND_ILLEGAL_CONTENT"
    assert fields["illegal_content_legal_ground"] == "A law"
    assert "law relied on makes such content illegal" in fields["illegal_content_explanation"]
    assert fields["decision_ground_reference_url"] == "https://example.org/law"
    # Two banks matched: the first reason's category leads, the other's is added.
    assert {fields["category"], *fields["category_addition"]} == {
        "STATEMENT_CATEGORY_VIOLENCE",
        "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY",
    }
    assert fields["category_specification"] == ["KEYWORD_TERRORIST_CONTENT"]


# -- the pure parts ---------------------------------------------------------------------


def _decided(post_id: str = "p", **changes: Any) -> DecidedPost:
    values: dict[str, Any] = {
        "post_id": post_id,
        "client": "_local",
        "version": 1,
        "verdict": Verdict.restrict,
        "reasons": ({"signal": "harm_poll", "label": "vote", "score": 0.9, "rule": "harm-poll"},),
        "actions": ("restrict", "review"),
        "content_types": ("CONTENT_TYPE_TEXT",),
        "first_scanned_at": DAY1,
        **changes,
    }
    return DecidedPost(**values)


def test_acts_in_any_order_and_a_confirmation_after_a_reversal() -> None:
    acts = [
        Act(ActKind.restrict, DAY3, "review-3"),
        Act(ActKind.reverse, DAY2, "review-2", by="a reviewer on appeal"),
    ]
    found = statements_for(_decided(), acts, StatementSettings())
    assert [(s.basis, s.status) for s in found] == [("scan", "reversed"), ("review", "in_force")]
    assert found[0].fields["end_date_visibility_restriction"] == "2026-12-02"
    assert [valid(s.fields) for s in found]
    allowed = statements_for(_decided(verdict=Verdict.allow, reasons=()), acts, StatementSettings())
    assert [s.basis for s in allowed] == ["review"]  # a reversal of nothing changes nothing
    assert "reviewed the content and kept it hidden" in allowed[0].fields["decision_facts"]


def test_puids_are_safe_unique_and_stable() -> None:
    odd = _decided("posts/été 2016/a b.jpg")
    made = puid(odd, "scan-restrict")
    assert made == puid(odd, "scan-restrict")
    assert made.startswith("posts_t_2016_a_b_jpg-v1-scan-restrict-")
    assert valid(statements_for(odd, [], StatementSettings())[0].fields)
    other_client = puid(_decided("posts/été 2016/a b.jpg", client="tok"), "scan-restrict")
    same_slug = puid(_decided("posts/été 2016/a_b.jpg"), "scan-restrict")
    assert len({made, other_client, same_slug}) == 3
    assert len(puid(_decided("x" * 5000), "review-99")) <= 500
    assert puid(_decided("///"), "scan-remove").startswith("post-v1-")


def test_content_types() -> None:
    post = {
        "id": "m",
        "text": "",
        "poll": {"question": "q", "options": ["a", "b"]},
        "media": [{"path": "a.jpg"}, {"path": "b.mp4"}, {"path": "c.gif"}],
    }
    assert content_types(json.dumps(post)) == (
        "CONTENT_TYPE_IMAGE",
        "CONTENT_TYPE_TEXT",
        "CONTENT_TYPE_VIDEO",
    )
    assert content_types(json.dumps({"media": [{"path": "c.gif"}]}), {0}) == ("CONTENT_TYPE_VIDEO",)
    assert content_types(json.dumps({"id": "empty"})) == ("CONTENT_TYPE_OTHER",)
    assert content_types("not json") == ("CONTENT_TYPE_OTHER",)
    [other] = statements_for(
        _decided(content_types=("CONTENT_TYPE_OTHER",)), [], StatementSettings()
    )
    assert valid(other.fields)["content_type_other"] == "a post without text or media"


def test_long_reasons_are_cut_to_the_limits() -> None:
    reasons = tuple(
        {"signal": "pdq", "bank": f"bank-{i:03d}" + "x" * 150, "label": "l", "distance": i}
        for i in range(60)
    )
    [made] = statements_for(
        _decided(verdict=Verdict.remove, reasons=reasons), [], StatementSettings()
    )
    fields = valid(made.fields)
    assert "and 52 more finding(s)" in fields["decision_facts"]
    assert len(fields["incompatible_content_explanation"]) <= 2000


def test_a_made_up_creation_time_gives_way_to_when_amber_saw_it() -> None:
    for claimed in (datetime(1970, 1, 1, tzinfo=UTC), DAY3):
        [made] = statements_for(_decided(created_at=claimed), [], StatementSettings())
        assert valid(made.fields)["content_date"] == "2026-12-01"


def test_batches_of_at_most_a_hundred() -> None:
    made = [
        s for i in range(250) for s in statements_for(_decided(f"p{i}"), [], StatementSettings())
    ]
    bodies = batches(made)
    assert [len(b["statements"]) for b in bodies] == [100, 100, 50] and BATCH_SIZE == 100
    assert [valid_batch(b) for b in bodies]
    assert bodies[2]["statements"][-1]["puid"] == made[-1].puid


def test_parse_range() -> None:
    assert parse_range("2026-12-01", "2026-12-01") == (DAY1.replace(hour=0), DAY2.replace(hour=0))
    assert parse_range("2026-12-01T10:00:00+01:00", "2026-12-01T12:00") == (
        DAY1.replace(hour=9),
        DAY1.replace(hour=12),
    )
    with pytest.raises(UserError, match=r"from '2026-13-01' is not an ISO 8601 date"):
        parse_range("2026-13-01", "2026-12-01")
    with pytest.raises(UserError, match=r"--to 'soon' is not"):
        parse_range("2026-12-01", "soon", names=("--from", "--to"))
    with pytest.raises(UserError, match="to '9999-12-31' is not an ISO 8601"):
        parse_range("2026-12-01", "9999-12-31")  # its whole day ends past year 9999
    with pytest.raises(UserError, match=r"from '0001-01-01T00:00:00\+01:00' is not"):
        parse_range("0001-01-01T00:00:00+01:00", "2026-12-01")
    with pytest.raises(UserError, match="to '2026-11-30' is not after from '2026-12-01'"):
        parse_range("2026-12-01", "2026-11-30")


# -- the schema itself ------------------------------------------------------------------


def test_the_schema_takes_the_databases_own_example() -> None:
    """The example of the database's API documentation (api-documentation-two.md, v2),
    without the illegal-content fields it sends beside an incompatible-content ground
    (the database drops them; this schema refuses them)."""
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    example = {
        "decision_visibility": ["DECISION_VISIBILITY_CONTENT_DISABLED"],
        "decision_monetary": "DECISION_MONETARY_TERMINATION",
        "end_date_monetary_restriction": "2023-08-08",
        "decision_provision": "DECISION_PROVISION_TOTAL_SUSPENSION",
        "decision_account": "DECISION_ACCOUNT_SUSPENDED",
        "account_type": "ACCOUNT_TYPE_BUSINESS",
        "decision_ground": "DECISION_GROUND_INCOMPATIBLE_CONTENT",
        "decision_ground_reference_url": "https://www.anurl.com",
        "content_type": [
            "CONTENT_TYPE_VIDEO",
            "CONTENT_TYPE_AUDIO",
            "CONTENT_TYPE_SYNTHETIC_MEDIA",
        ],
        "category": "STATEMENT_CATEGORY_CYBER_VIOLENCE_AGAINST_WOMEN",
        "incompatible_content_ground": "incompatible content grounds",
        "incompatible_content_explanation": "incompatible content explanation",
        "incompatible_content_illegal": "Yes",
        "territorial_scope": ["PT", "ES", "DE"],
        "content_language": "EN",
        "content_date": "2023-08-08",
        "content_id": {"EAN-13": "0123456789123"},
        "application_date": "2023-08-08",
        "decision_facts": "facts about the decision",
        "source_type": "SOURCE_TRUSTED_FLAGGER",
        "automated_detection": "No",
        "automated_decision": "AUTOMATED_DECISION_PARTIALLY",
        "puid": "TK421",
    }
    valid(example)
    valid_batch({"statements": [example]})

    def wrong(**changes: Any) -> list[str]:
        changed = {k: v for k, v in {**example, **changes}.items() if v is not None}
        return [e.message for e in ONE.iter_errors(changed)]

    assert wrong(puid="TK 421") and wrong(puid=None) and wrong(puid="x" * 501)
    assert wrong(category="STATEMENT_CATEGORY_PORNOGRAPHY_OR_SEXUALIZED_CONTENT")  # v1 only
    assert wrong(content_date="2023-8-8") and wrong(content_date="1999-12-31")
    assert wrong(application_date="2019-12-31") and wrong(application_date="2023-02-30")
    assert wrong(territorial_scope=["US"]) and wrong(content_language="XX")
    assert wrong(decision_facts="x" * 5001) and wrong(incompatible_content_ground=None)
    assert wrong(decision_ground="DECISION_GROUND_ILLEGAL_CONTENT")  # its fields are missing
    assert wrong(decision_visibility=["DECISION_VISIBILITY_OTHER"])  # needs _other
    assert wrong(content_type=["CONTENT_TYPE_OTHER"]) and wrong(content_type=[])
    assert wrong(content_id={"EAN-13": "123"}) and wrong(decision_ground_reference_url="ftp://x")
    assert wrong(
        decision_visibility=None, decision_monetary=None, decision_provision=None,
        decision_account=None,
    )  # fmt: skip
    assert not wrong(decision_visibility=None)  # another restriction is enough
    assert [e.message for e in BATCH.iter_errors({"statements": [example] * 101})]
    assert [e.message for e in BATCH.iter_errors({"statements": []})]
    with pytest.raises(StatementSchemaError, match="given twice"):
        check_batch({"statements": [example, example]})
    with pytest.raises(StatementSchemaError, match="before the application_date"):
        check_batch({"statements": [{**example, "end_date_monetary_restriction": "2023-08-07"}]})


# -- HTTP -------------------------------------------------------------------------------


@pytest.fixture
def served(case: Case) -> dict[str, TestClient]:
    case.scan([POLL, {"id": "hello", "text": "hello"}])
    engine = case.engine
    app = create_app(engine, media_root=case.folder)
    clients = {}
    for name, scopes in (("ingest", "ingest"), ("other", "ingest"), ("review", "review")):
        secret = engine.tokens.create(name, parse_scopes(scopes))[1]
        clients[name] = TestClient(app, headers={"authorization": f"Bearer {secret}"})
    clients["anonymous"] = TestClient(app)
    return clients


def test_get_a_posts_statements(served: dict[str, TestClient]) -> None:
    http = served
    got = http["ingest"].get("/v1/statements/poll-1")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["post_id"] == "poll-1" and body["client"] == "_local"
    [statement] = body["statements"]
    assert body["in_force"] == statement["puid"] == statement["statement"]["puid"]
    assert statement["status"] == "in_force" and statement["basis"] == "scan"
    valid(statement["statement"])

    missing = http["ingest"].get("/v1/statements/hello")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "NotFoundError"
    assert "no statement of reasons" in missing.json()["error"]["message"]
    unknown = http["ingest"].get("/v1/statements/nope")
    assert unknown.status_code == 404 and unknown.json()["error"]["status"] == 404

    # A token reads its own posts' statements and the local ones, never another token's.
    posted = http["other"].post("/v1/posts", json=VOTE_IN_WORDS)
    assert posted.status_code == 200 and posted.json()["verdict"] == "restrict"
    assert http["other"].get("/v1/statements/words").status_code == 200
    assert http["ingest"].get("/v1/statements/words").status_code == 404
    assert http["anonymous"].get("/v1/statements/poll-1").status_code == 401
    assert http["review"].get("/v1/statements/poll-1").status_code == 403


def test_get_the_batches_of_a_range(served: dict[str, TestClient]) -> None:
    http = served
    got = http["ingest"].get("/v1/statements", params={"from": "2026-12-01", "to": "2026-12-01"})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["count"] == 1 and body["batch_size"] == 100
    assert body["endpoint"] == "https://transparency.dsa.ec.europa.eu/api/v1/statements"
    assert body["from"] == "2026-12-01T00:00:00+00:00" and body["to"] == "2026-12-02T00:00:00+00:00"
    [batch] = body["batches"]
    [statement] = valid_batch(batch)
    assert statement["puid"].startswith("poll-1-v1-")
    later = http["ingest"].get("/v1/statements", params={"from": "2026-12-02", "to": "2026-12-09"})
    assert later.json()["batches"] == [] and later.json()["count"] == 0

    bad = http["ingest"].get("/v1/statements", params={"from": "2026-12-32", "to": "2026-12-01"})
    assert bad.status_code == 400
    assert bad.json()["error"]["message"].startswith("from '2026-12-32' is not an ISO 8601")
    backwards = http["ingest"].get(
        "/v1/statements", params={"from": "2026-12-02", "to": "2026-12-01"}
    )
    assert backwards.status_code == 400 and "is not after" in backwards.text
    missing = http["ingest"].get("/v1/statements", params={"from": "2026-12-01"})
    assert missing.status_code == 422 and missing.json()["error"]["type"] == "ValidationError"


# -- the command line -------------------------------------------------------------------


def _cli(case: Case, *args: str | Path) -> CliResult:
    env = {"AMBER_DB": case.database, "AMBER_VAULT": str(case.folder / "vault")}
    return run_cli("statements", *args, env=env)


def test_the_command_writes_batch_files(case: Case) -> None:
    case.scan([POLL, VOTE_IN_WORDS, {"id": "copy", "media": [{"path": "images/copy.png"}]}])
    out = case.folder / "out"

    done = _cli(case, "--from", "2026-12-01", "--to", "2026-12-01", "--out", out)
    assert done.returncode == 0, done.stderr
    [path] = sorted(out.iterdir())
    assert path.name == "statements-20261201T000000Z-20261202T000000Z-0001.json"
    written = valid_batch(json.loads(path.read_text(encoding="utf-8")))
    assert len(written) == 3 and "3 statements in 1 batch" in done.stderr

    again = _cli(case, "--from", "2026-12-01", "--to", "2026-12-01", "--out", out)
    assert again.returncode == ConflictError.exit_code
    assert again.stderr.startswith("Error: ") and "holds statements of this range" in again.stderr
    assert "Traceback" not in again.stderr

    printed = _cli(case, "--from", "2026-12-01T00:00:00Z", "--to", "2026-12-01T23:59:59Z")
    assert printed.returncode == 0, printed.stderr
    [line] = printed.stdout.splitlines()
    assert valid_batch(json.loads(line)) == written

    policy = case.folder / "policy.toml"
    policy.write_text(POLICY + '[statements]\nterritorial_scope = ["IE"]\n', encoding="utf-8")
    scoped = _cli(case, "--from", "2026-12-01", "--to", "2026-12-01", "--policy", policy)
    assert {tuple(s["territorial_scope"]) for s in json.loads(scoped.stdout)["statements"]} == {
        ("IE",)
    }


def test_the_command_refuses_bad_dates(case: Case) -> None:
    for args, message in (
        (("--from", "2026-12-01", "--to", "yesterday"), "Error: --to 'yesterday' is not an ISO"),
        (("--from", "2026-02-30", "--to", "2026-03-01"), "Error: --from '2026-02-30' is not"),
        (("--from", "2026-12-02", "--to", "2026-12-01"), "is not after --from '2026-12-02'"),
    ):
        refused = _cli(case, *args)
        assert refused.returncode == 2, refused
        assert message in refused.stderr and "Traceback" not in refused.stderr
        assert refused.stdout == ""
    usage = _cli(case, "--from", "2026-12-01")
    assert usage.returncode == 2 and "--to" in usage.stderr
