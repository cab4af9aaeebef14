"""``amber decisions``, ``amber scan -`` and the scan table as people read them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from PIL import ImageOps

from amber.banks import BankAction
from amber.cli.banks import ActionChoice
from amber.render import describe_reason
from amber.synthetic import photo
from conftest import CliResult

Cli = Callable[..., CliResult]


def _clean(result: CliResult, code: int = 0) -> CliResult:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return result


def _banked_scan(
    amber_cli: Cli, photo_file: Callable[..., Path], write_posts: Callable[..., Path]
) -> Path:
    """Bank a photo, scan a mirrored copy and a text post; returns the posts file."""
    original = photo(50, 640, 480)
    known = photo_file(50, "known.png", image=original)
    mirrored = photo_file(0, "mirror.jpg", image=ImageOps.mirror(original))
    _clean(amber_cli("bank", "create", "terror-photos", "--label", "execution"))
    _clean(amber_cli("bank", "add", "terror-photos", known))
    posts = write_posts(
        [
            {"id": "copy", "author": "ann", "media": [{"path": str(mirrored)}]},
            {"id": "hello", "author": "bob", "text": "hello"},
        ]
    )
    _clean(amber_cli("scan", posts, "--format", "jsonl"))
    return posts


def test_decisions_list_and_show(
    amber_cli: Cli, photo_file: Callable[..., Path], write_posts: Callable[..., Path]
) -> None:
    _banked_scan(amber_cli, photo_file, write_posts)
    listed = _clean(amber_cli("decisions", "list", "--format", "jsonl"))
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["post_id"] for r in rows] == ["hello", "copy"]
    assert {"post_id", "verdict", "reasons", "actions", "author", "scanned_at"} <= set(rows[0])
    only = _clean(amber_cli("decisions", "list", "--bank", "terror-photos", "--format", "jsonl"))
    assert [json.loads(line)["post_id"] for line in only.stdout.splitlines()] == ["copy"]
    by = _clean(amber_cli("decisions", "list", "--author", "bob", "--verdict", "allow"))
    assert "hello" in by.stdout and "copy" not in by.stdout
    later = _clean(amber_cli("decisions", "list", "--since", "2999-01-01", "--format", "jsonl"))
    assert later.stdout == ""
    earlier = _clean(amber_cli("decisions", "list", "--until", "2999-01-01T00:00:00+02:00"))
    assert "copy" in earlier.stdout and "hello" in earlier.stdout
    assert _clean(amber_cli("decisions", "list", "--limit", "1")).stdout.count("hello") == 1

    shown = _clean(amber_cli("decisions", "show", "copy", "--format", "json"))
    record = json.loads(shown.stdout)
    assert record["post_id"] == "copy" and record["verdict"] == "remove"
    assert record["author"] == "ann" and record["scan_count"] == 1
    table = _clean(amber_cli("decisions", "show", "copy"))
    assert "pdq · bank terror-photos (execution) · distance" in table.stdout
    assert "scan_count" in table.stdout and table.stderr == ""


def test_decisions_bad_input_is_a_clean_error(amber_cli: Cli) -> None:
    missing = _clean(amber_cli("decisions", "show", "nope"), 2)
    assert missing.stderr.startswith("Error: no decision for post 'nope'") and not missing.stdout
    bad_verdict = _clean(amber_cli("decisions", "list", "--verdict", "deleted"), 2)
    assert "verdict 'deleted' is unknown" in bad_verdict.stderr
    bad_time = _clean(amber_cli("decisions", "list", "--since", "yesterday"), 2)
    assert "--since 'yesterday' is not an ISO 8601" in bad_time.stderr
    assert "--format 'xml'" in _clean(amber_cli("decisions", "list", "--format", "xml"), 2).stderr
    assert (
        "--format 'jsonl'"
        in _clean(amber_cli("decisions", "show", "x", "--format", "jsonl"), 2).stderr
    )
    assert _clean(amber_cli("decisions", "list", "--limit", "0"), 2).stdout == ""


def test_scan_table_gives_one_short_line_per_reason(
    amber_cli: Cli, photo_file: Callable[..., Path], write_posts: Callable[..., Path]
) -> None:
    posts = _banked_scan(amber_cli, photo_file, write_posts)
    table = _clean(amber_cli("scan", posts))
    [line] = [line for line in table.stdout.splitlines() if "copy" in line]
    assert "pdq · bank terror-photos (execution) · distance" in line
    assert "· view " in line and "entry '" not in table.stdout  # the detail stays in jsonl


def test_describe_reason() -> None:
    pdq = {
        "signal": "pdq",
        "bank": "terror-photos",
        "label": "execution",
        "distance": 4,
        "quality": 100,
        "detail": "entry 'a.png' via mirror -> original",
    }
    assert describe_reason(pdq) == "pdq · bank terror-photos (execution) · distance 4 · view mirror"
    both = {**pdq, "detail": "entry 'a.png' via trimmed -> rotate90"}
    assert describe_reason(both).endswith("· view trimmed -> rotate90")
    exact = {"signal": "sha256", "bank": "b", "label": "b", "distance": 0, "detail": "entry 'x'"}
    assert describe_reason(exact) == "sha256 · bank b · exact"
    poll = {
        "signal": "harm_poll",
        "label": "vote",
        "score": 0.912,
        "detail": "harm_poll vote score=0.91 lang=en lexicon=full | cues: choice_pair 'kill or'",
    }
    assert describe_reason(poll) == "harm_poll · vote · score 0.91 · lang=en lexicon=full"
    unread = {"signal": "media", "detail": "could not be read: not an image", "media": "b.txt"}
    assert describe_reason(unread) == "media · b.txt · could not be read: not an image"
    long = describe_reason({"signal": "x", "detail": "y" * 200})
    assert len(long) < 80 and long.endswith("…")


def test_scan_reads_posts_from_stdin(amber_cli: Cli, tmp_path: Path) -> None:
    photo(3, 200, 150).save(tmp_path / "pic.png")
    lines = [
        json.dumps({"id": "s1", "text": "hello"}),
        json.dumps({"id": "s2", "media": [{"path": "pic.png"}]}),  # relative to where we are
        "not json",
    ]
    result = amber_cli("scan", "-", "--format", "jsonl", input="\n".join(lines) + "\n")
    _clean(result, 1)
    assert [json.loads(line)["post_id"] for line in result.stdout.splitlines()] == ["s1", "s2"]
    assert "Error: <stdin> line 3: invalid JSON" in result.stderr


def test_token_list_jsonl(amber_cli: Cli) -> None:
    secret = _clean(amber_cli("token", "create", "--scopes", "review,ingest", "--name", "bot"))
    rows = [
        json.loads(line)
        for line in _clean(amber_cli("token", "list", "--format", "jsonl")).stdout.splitlines()
    ]
    assert rows == [
        {
            "name": "bot",
            "scopes": ["ingest", "review"],
            "created_at": rows[0]["created_at"],
            "revoked_at": None,
        }
    ]
    assert secret.stdout.strip() not in json.dumps(rows)
    assert "--format 'csv'" in _clean(amber_cli("token", "list", "--format", "csv"), 2).stderr


def test_the_cli_action_choices_are_the_bank_actions() -> None:
    assert [a.value for a in ActionChoice] == [a.value for a in BankAction]
