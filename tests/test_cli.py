"""The command line as a user runs it: exit codes, stdout vs stderr, no tracebacks.

In process through typer's runner; what only a real process shows (the entry point, a
terminal, Ctrl-C) is in ``test_cli_process.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from PIL import ImageOps

from amber.synthetic import photo
from conftest import CliResult, sqlite_only

Cli = Callable[..., CliResult]


def assert_clean_error(result: CliResult, code: int, words: str) -> None:
    assert result.returncode == code, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_bank_commands_and_scan_jsonl(
    amber_cli: Cli,
    photo_file: Callable[..., Path],
    write_posts: Callable[..., Path],
    tmp_path: Path,
) -> None:
    original = photo(40, 640, 480)
    known = photo_file(40, "known.png", image=original)
    assert (
        amber_cli(
            "bank", "create", "known", "--action", "remove", "--label", "execution"
        ).returncode
        == 0
    )
    added = amber_cli("bank", "add", "known", known)
    assert added.returncode == 0 and "added 1 entry to bank" in added.stderr
    listing = amber_cli("bank", "list", "--format", "jsonl")
    [bank] = [json.loads(line) for line in listing.stdout.splitlines()]
    assert bank["name"] == "known" and bank["entries"] == 1 and bank["threshold"] == 31

    mirrored = photo_file(0, "m.jpg", image=ImageOps.mirror(original))
    posts = write_posts(
        [
            {"id": "copy", "media": [{"path": str(mirrored)}]},
            {"id": "other", "media": [{"path": str(photo_file(41))}]},
            "not json",
        ]
    )
    result = amber_cli("scan", posts, "--format", "jsonl")
    assert result.returncode == 1  # one line failed
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["post_id"], r["verdict"]) for r in rows] == [("copy", "remove"), ("other", "allow")]
    assert set(rows[0]) == {"post_id", "verdict", "reasons", "actions"}
    assert rows[0]["actions"] == ["remove"]
    reason = rows[0]["reasons"][0]
    assert reason["signal"] == "pdq" and reason["bank"] == "known"
    assert reason["label"] == "execution" and isinstance(reason["distance"], int)
    assert f"Error: {posts} line 3: invalid JSON" in result.stderr
    assert "Traceback" not in result.stderr

    table = amber_cli("scan", posts)
    assert "remove" in table.stdout and "copy" in table.stdout

    exported = amber_cli("bank", "export", "known")
    assert exported.returncode == 0
    header, *lines = exported.stdout.splitlines()
    assert header == "signal_type,signal,label,entry,quality"
    assert sorted(line.split(",")[0] for line in lines) == ["md5", "orb", "pdq", "sha256"]
    csv_file = tmp_path / "k.csv"
    assert amber_cli("bank", "export", "known", csv_file).returncode == 0
    assert amber_cli("bank", "create", "copy").returncode == 0
    imported = amber_cli("bank", "import", "copy", csv_file)
    # the photo's three hashes stay one entry (the export's entry column)
    assert imported.returncode == 0 and "imported 1 entry" in imported.stderr


def test_user_errors_exit_2_without_traceback(amber_cli: Cli, tmp_path: Path) -> None:
    assert_clean_error(amber_cli("bank", "add", "nope", tmp_path), 2, "no bank called 'nope'")
    assert_clean_error(amber_cli("scan", tmp_path / "missing.jsonl"), 2, "does not exist")
    assert_clean_error(amber_cli("scan", tmp_path, "--format", "xml"), 2, "--format 'xml'")
    assert_clean_error(amber_cli("bank", "create", "a", "--threshold", "99"), 2, "out of range")
    assert amber_cli("bank", "create", "a").returncode == 0
    assert_clean_error(amber_cli("bank", "create", "a"), 2, "already exists")
    bad = tmp_path / "bad.csv"
    bad.write_text("pdq,xyz\n")
    assert_clean_error(amber_cli("bank", "import", "a", bad), 2, "row 1: pdq value 'xyz'")
    policy = tmp_path / "p.toml"
    policy.write_text("[[rules]]\nname = 'r'\nwhen = 'nonsense'\n")
    assert_clean_error(amber_cli("scan", tmp_path, "--policy", policy), 2, "rules[0].when")
    assert_clean_error(amber_cli("bank", "create", "b", "--action", "delete"), 2, "delete")


@sqlite_only
def test_corrupt_database_is_a_clean_error(amber_cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "amber.db").write_bytes(b"garbage" * 1000)
    assert_clean_error(amber_cli("bank", "list"), 2, "amber.db")
    assert (tmp_path / "amber.db").read_bytes() == b"garbage" * 1000


def test_folder_scan_with_a_non_image(amber_cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    photo(1, 200, 150).save(folder / "a.png")
    (folder / "b.txt").write_text("hello")
    result = amber_cli("scan", folder, "--format", "jsonl")
    assert result.returncode == 1
    rows = {json.loads(x)["post_id"]: json.loads(x) for x in result.stdout.splitlines()}
    assert rows["a.png"]["verdict"] == "allow"
    # What amber could not read, a person should look at.
    assert rows["b.txt"]["verdict"] == "review"
    assert rows["b.txt"]["reasons"][0]["signal"] == "media"
    assert "b.txt" in result.stderr and "media[0].path" in result.stderr


@sqlite_only  # the demo makes its own SQLite database
def test_demo_runs_and_explains(amber_cli: Cli, tmp_path: Path) -> None:
    result = amber_cli("demo", "--dir", tmp_path / "d")
    assert result.returncode == 0, result.stderr
    assert "6 copies of the known photo were removed" in result.stdout
    assert "2 copies of the known video were removed" in result.stdout
    poll_row = next(line for line in result.stdout.splitlines() if "p-099" in line)
    assert "restrict" in poll_row and "harm_poll" in poll_row
    assert "freeze_poll" in result.stdout and "escalate:threat_to_life" in result.stdout
    again = amber_cli("demo", "--dir", tmp_path / "d")
    assert again.returncode == 0
    (tmp_path / "mine").mkdir()
    assert_clean_error(amber_cli("demo", "--dir", tmp_path / "mine"), 2, "not an amber demo folder")


def test_markup_in_ids_and_labels_is_shown_as_written(
    amber_cli: Cli, tmp_path: Path, write_posts: Callable[..., Path]
) -> None:
    assert amber_cli("bank", "create", "b", "--label", "[/]oops[bold red]").returncode == 0
    listing = amber_cli("bank", "list")
    assert listing.returncode == 0 and "[/]oops[bold red]" in listing.stdout
    posts = write_posts([{"id": "[bold red]evil[/bold red] ok"}, {"id": "[/]"}])
    table = amber_cli("scan", posts)
    assert table.returncode == 0, table.stderr
    assert "[bold red]evil[/bold red] ok" in table.stdout and "[/]" in table.stdout


def test_single_image_bom_and_error_lines(
    amber_cli: Cli, tmp_path: Path, photo_file: Callable[..., Path]
) -> None:
    image = photo_file(2, "one.png")
    single = amber_cli("scan", image, "--format", "jsonl")
    assert single.returncode == 0 and json.loads(single.stdout)["post_id"] == "one.png"
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"id": "first"}\n' + b'{"id": ' + b'"x' * 60 + b"\n")
    result = amber_cli("scan", bom, "--format", "jsonl")
    assert json.loads(result.stdout)["post_id"] == "first"
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert f"{bom} line 2: invalid JSON" in error  # one record per line, never wrapped
    assert_clean_error(amber_cli("scan", image, "--workers", "0"), 2, "--workers")


def test_policy_naming_an_unknown_signal_is_refused(amber_cli: Cli, tmp_path: Path) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text("[[rules]]\nname = 'r'\nwhen = 'bank_match'\nsignals = ['PDQ']\n")
    assert_clean_error(
        amber_cli("scan", tmp_path, "--policy", policy),
        2,
        "rules[0].signals': unknown signal type 'PDQ'",
    )


def test_token_commands(amber_cli: Cli) -> None:
    created = amber_cli("token", "create", "--scopes", "ingest,review", "--name", "bot")
    assert created.returncode == 0 and created.stdout.startswith("amber_")
    assert "cannot show it again" in created.stderr
    listed = amber_cli("token", "list")
    assert "bot" in listed.stdout and "ingest, review" in listed.stdout
    assert created.stdout.strip() not in listed.stdout
    assert_clean_error(
        amber_cli("token", "create", "--scopes", "root", "--name", "x"), 2, "unknown scope 'root'"
    )
    assert amber_cli("token", "revoke", "bot").returncode == 0
    assert "revoked" in amber_cli("token", "list").stdout
