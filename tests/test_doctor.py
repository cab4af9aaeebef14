"""Mistakes that used to fail open without a word: a policy naming a bank that does not
exist, a database with no banks, a mistyped ``--db`` path; and ``amber doctor``, which
lists such problems."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.engine import open_engine
from amber.posts import parse_post
from amber.store.db import _alembic_config, database_url, sqlite_engine
from amber.tokens import parse_scopes
from conftest import CliResult, run_cli, sqlite_only

Cli = Callable[..., CliResult]

NAMED_BANK_POLICY = """
name = "named"
[[rules]]
name = "known-photos"
when = "bank_match"
banks = ["known-photos"]
verdict = "bank"
"""


def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _posts(tmp_path: Path) -> Path:
    path = tmp_path / "posts.jsonl"
    path.write_text(json.dumps({"id": "p1", "text": "hello"}) + "\n", encoding="utf-8")
    return path


def test_a_policy_naming_a_bank_that_does_not_exist_is_refused(
    amber_cli: Cli, tmp_path: Path
) -> None:
    assert amber_cli("bank", "create", "known-photo", "--action", "remove").returncode == 0
    policy = _policy(tmp_path, NAMED_BANK_POLICY)
    refused = amber_cli("scan", _posts(tmp_path), "--policy", policy)
    assert refused.returncode == 2, refused.stdout
    assert "rule 'known-photos' names bank 'known-photos'" in refused.stderr
    assert "banks: known-photo" in refused.stderr and refused.stdout == ""
    assert "Traceback" not in refused.stderr
    # The policy may say to go on: then a loud warning, and the scan runs.
    warned = _policy(tmp_path, NAMED_BANK_POLICY + '[checks]\nunknown_bank = "warning"\n')
    ran = amber_cli("scan", _posts(tmp_path), "--policy", warned, "--format", "jsonl")
    assert ran.returncode == 0, ran.stderr
    assert "Warning: " in ran.stderr and "names bank 'known-photos'" in ran.stderr
    assert json.loads(ran.stdout)["verdict"] == "allow"


def test_a_bad_checks_setting_is_a_policy_error(amber_cli: Cli, tmp_path: Path) -> None:
    bad = _policy(tmp_path, NAMED_BANK_POLICY + '[checks]\nunknown_bank = "maybe"\n')
    result = amber_cli("scan", _posts(tmp_path), "--policy", bad)
    assert result.returncode == 2
    assert "key 'checks.unknown_bank'" in result.stderr and "'maybe'" in result.stderr


def test_a_database_with_no_banks_warns_on_stderr_and_in_health(
    amber_cli: Cli, tmp_path: Path, database: str
) -> None:
    ran = amber_cli("scan", _posts(tmp_path), "--format", "jsonl")
    assert ran.returncode == 0, ran.stderr
    assert "Warning: the database has no banks" in ran.stderr
    assert json.loads(ran.stdout)["post_id"] == "p1"
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        _, token = engine.tokens.create("ops", parse_scopes("ingest"))
        client = TestClient(create_app(engine), headers={"authorization": f"Bearer {token}"})
        health = client.get("/v1/health").json()
        assert health["status"] == "ok"
        [problem] = health["problems"]
        assert problem["check"] == "no_banks" and problem["severity"] == "warning"
        engine.banks.create("known", action="remove")
        assert client.get("/v1/health").json()["problems"] == [
            {
                "check": "empty_bank",
                "severity": "warning",
                "message": "bank 'known' has no entries: nothing can match it yet",
            }
        ]
    strict = _policy(
        tmp_path,
        NAMED_BANK_POLICY.replace('banks = ["known-photos"]\n', "")
        + '[checks]\nno_banks = "error"\n',
    )
    with open_engine(db=tmp_path / "empty.db", vault=tmp_path / "vault-2"):
        pass
    refused = run_cli("scan", _posts(tmp_path), "--policy", strict, "--db", tmp_path / "empty.db")
    assert refused.returncode == 2 and "the database has no banks" in refused.stderr


def test_a_mistyped_db_path_is_refused_by_commands_that_read(tmp_path: Path) -> None:
    typo = tmp_path / "amber.bd"
    posts = _posts(tmp_path)
    for args in (
        ("scan", posts),
        ("explain", posts),
        ("bank", "list"),
        ("bank", "export", "known"),
        ("decisions", "list"),
        ("token", "list"),
        ("doctor",),
    ):
        result = run_cli(*args, "--db", typo)
        assert result.returncode == 2, (args, result.stdout)
        assert f"database {str(typo)!r} does not exist" in result.stderr, args
        assert not typo.exists(), args  # and nothing was made there
    # Commands that create state still create the database, as the README's sessions do.
    created = run_cli("token", "create", "--name", "hook", "--scopes", "ingest", "--db", typo)
    assert created.returncode == 0, created.stderr
    other = tmp_path / "banks.db"
    assert run_cli("bank", "create", "known", "--db", other).returncode == 0
    assert run_cli("bank", "list", "--db", other).returncode == 0


def test_doctor_finds_nothing_wrong_in_a_healthy_state(
    amber_cli: Cli, photo_file: Callable[..., Path]
) -> None:
    assert amber_cli("bank", "create", "known", "--action", "remove").returncode == 0
    assert amber_cli("bank", "add", "known", photo_file(1)).returncode == 0
    healthy = amber_cli("doctor")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "no problems found" in healthy.stderr
    jsonl = amber_cli("doctor", "--format", "jsonl")
    assert jsonl.returncode == 0 and jsonl.stdout == ""


def test_doctor_lists_each_problem_and_exits_1(
    amber_cli: Cli, tmp_path: Path, database: str
) -> None:
    assert amber_cli("bank", "create", "known-photo", "--action", "remove").returncode == 0
    (tmp_path / "vault").mkdir()
    (tmp_path / "vault" / "stray.txt").write_text("not a vault")
    policy = _policy(tmp_path, NAMED_BANK_POLICY)
    result = amber_cli("doctor", "--policy", policy, "--format", "jsonl")
    assert result.returncode == 1, result.stderr
    found = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(p["check"], p["severity"]) for p in found] == [
        ("unknown_bank", "error"),
        ("vault", "error"),
    ]
    assert "names bank 'known-photos'" in found[0]["message"]
    assert "holds no vault.json" in found[1]["message"]
    table = amber_cli("doctor", "--policy", policy)
    assert table.returncode == 1 and "unknown_bank" in table.stdout
    assert "2 problems found" in table.stderr
    # The library call the command makes, and the list a new check is added to.
    from amber.doctor import CHECKS, Severity, check

    with open_engine(db=database, vault=tmp_path / "vault", policy=policy) as engine:
        problems = check(engine)
        assert [p.check for p in problems] == ["unknown_bank", "vault"]
        assert problems[0].severity is Severity.error
        assert check(engine, checks=[c for c in CHECKS if c.__name__ != "check_vault"]) == [
            problems[0]
        ]


@sqlite_only
def test_doctor_reports_a_schema_behind_ambers_and_does_not_migrate_it(
    tmp_path: Path, database: str
) -> None:
    engine = sqlite_engine(database_url(database))
    Path(database).touch()
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")
    result = run_cli("doctor", "--db", database, "--vault", tmp_path / "vault", "--format", "jsonl")
    assert result.returncode == 1, result.stderr
    [problem] = [json.loads(line) for line in result.stdout.splitlines()]
    assert problem["check"] == "migrations" and problem["severity"] == "error"
    assert "revision 0005" in problem["message"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0005"
    engine.dispose()


def test_doctor_reports_a_decision_of_review_or_stronger_without_evidence(
    tmp_path: Path, database: str
) -> None:
    poll = {"id": "p1", "text": "Kill him or let him go? You have one hour to vote"}
    with open_engine(db=database, vault=tmp_path / "kept") as engine:
        [result] = engine.scan([parse_post(poll, base=tmp_path)], workers=1)
        assert result.outcome.verdict.value == "restrict"
    # The same database beside another (empty) vault: the poll's evidence is not there.
    with open_engine(db=database, vault=tmp_path / "other") as engine:
        engine.open_vault()

    def evidence_problems(vault: Path) -> list[dict[str, str]]:
        result = run_cli("doctor", "--db", database, "--vault", vault, "--format", "jsonl")
        found = [json.loads(line) for line in result.stdout.splitlines()]
        assert result.returncode == (1 if found else 0), result.stderr
        return [p for p in found if p["check"] == "evidence"]

    [problem] = evidence_problems(tmp_path / "other")
    assert problem["severity"] == "error" and "'p1' (restrict)" in problem["message"]
    assert evidence_problems(tmp_path / "kept") == []
