"""Entry-level control of banks: list, read, disable until a time, enable, note, delete one
entry; allow banks that override other banks' matches; rename, enable and disable a
bank; every change in the bank's audit. Through the library, the command line and the
API, on each backend."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.banks import NewEntry
from amber.engine import Engine
from amber.errors import ConflictError, NotFoundError, UserError
from amber.posts import parse_post
from amber.signals import SignalValue
from amber.tokens import parse_scopes
from conftest import CliResult


def decide(engine: Engine, post_id: str, image: Path) -> tuple[str, list[dict[str, object]]]:
    raw = {"id": post_id, "media": [{"path": str(image)}]}
    result = engine.decide_post(parse_post(raw, base=Path("."), source="test"))
    found = result.to_json()
    return str(found["verdict"]), list(found["reasons"])  # type: ignore[call-overload]


def test_an_entry_is_listed_read_noted_and_its_content_named(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    engine.banks.create("terror")
    engine.banks.add_files("terror", [photo_file(1), photo_file(2)], note="case 12")
    first, second = engine.banks.entries("terror")
    assert (first.note, second.note) == ("case 12", "case 12")
    assert {v.signal_type for v in first.values} == {"pdq", "md5", "sha256", "orb"}
    assert all(v.variant == "original" for v in first.values)  # own values only
    assert [e.id for e in engine.banks.entries("terror", after=first.id)] == [second.id]
    assert engine.banks.entries("terror", limit=1) == [first]

    changed = engine.banks.update_entry(
        "terror",
        first.id,
        note="  confirmed by reviewer  ",
        content_id="post-991",
        content_uri="https://example.org/p/991",
        metadata={"case": 12, "tags": ["result-photo"]},
    )
    assert changed.note == "confirmed by reviewer"
    again = engine.banks.entry("terror", first.id)
    assert again == changed
    assert again.to_json()["metadata"] == {"case": 12, "tags": ["result-photo"]}
    assert again.to_json()["signals"]["pdq"] == [
        v.value for v in first.values if v.signal_type == "pdq"
    ]
    cleared = engine.banks.update_entry("terror", first.id, note="", metadata=None)
    assert (cleared.note, cleared.metadata, cleared.content_id) == (None, None, "post-991")


def test_a_disabled_entry_stops_matching_until_its_time_or_until_enabled(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    image = photo_file(3)
    engine.banks.create("terror")
    engine.banks.add_files("terror", [image])
    (entry,) = engine.banks.entries("terror")
    assert decide(engine, "p1", image)[0] == "remove"

    now = datetime.now(UTC)
    engine.banks.update_entry("terror", entry.id, disabled_until=now + timedelta(days=30))
    assert decide(engine, "p2", image)[0] == "allow"
    assert not engine.banks.entry("terror", entry.id).enabled(now)

    engine.banks.update_entry("terror", entry.id, disabled_until=None)
    assert decide(engine, "p3", image)[0] == "remove"

    # A time already past: the entry matches again by itself.
    engine.banks.update_entry("terror", entry.id, disabled_until=now - timedelta(seconds=1))
    assert decide(engine, "p4", image)[0] == "remove"


def test_disable_times_are_checked(engine: Engine, photo_file: Callable[..., Path]) -> None:
    engine.banks.create("terror")
    engine.banks.add_files("terror", [photo_file(4)])
    (entry,) = engine.banks.entries("terror")
    with pytest.raises(UserError, match="more than 3653 days ahead"):
        engine.banks.update_entry(
            "terror", entry.id, disabled_until=datetime.now(UTC) + timedelta(days=4000)
        )
    with pytest.raises(UserError, match="time zone"):
        engine.banks.update_entry("terror", entry.id, disabled_until=datetime(2027, 1, 1))
    with pytest.raises(UserError, match="note"):
        engine.banks.update_entry("terror", entry.id, note="x" * 256)
    with pytest.raises(UserError, match="metadata must be a JSON object"):
        engine.banks.update_entry("terror", entry.id, metadata=["a"])
    with pytest.raises(NotFoundError, match="no entry 999"):
        engine.banks.update_entry("terror", 999, note="x")
    with pytest.raises(NotFoundError):  # beyond any database's ids: not found, not a crash
        engine.banks.entry("terror", 2**70)
    with pytest.raises(UserError, match="after -1 is out of range"):
        engine.banks.entries("terror", after=-1)
    with pytest.raises(UserError, match="after"):
        engine.banks.audit("terror", after=2**64)
    with pytest.raises(UserError, match="limit 0 is out of range"):
        engine.banks.audit("terror", limit=0)
    assert engine.banks.entry("terror", entry.id).note is None  # nothing half-done


def test_a_deleted_entry_stops_matching_at_once_and_the_audit_keeps_its_signals(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    image, other = photo_file(5), photo_file(6)
    engine.banks.create("terror")
    engine.banks.add_files("terror", [image, other])
    first, second = engine.banks.entries("terror")
    gone = engine.banks.delete_entry("terror", first.id)
    assert gone.id == first.id
    assert decide(engine, "p1", image)[0] == "allow"
    assert decide(engine, "p2", other)[0] == "remove"
    with pytest.raises(NotFoundError):
        engine.banks.entry("terror", first.id)
    with pytest.raises(NotFoundError):
        engine.banks.delete_entry("terror", first.id)
    deleted = [e for e in engine.banks.audit("terror") if e.action == "delete_entry"]
    assert deleted[0].entry == first.id
    assert deleted[0].detail["signals"] == first.to_json()["signals"]
    # Another bank's entry cannot be reached through this bank's name.
    engine.banks.create("other")
    with pytest.raises(NotFoundError):
        engine.banks.delete_entry("other", second.id)
    assert engine.banks.delete_entries("other", [second.id]) == 0
    assert engine.banks.delete_entries("terror", [second.id, 12345]) == 1
    assert decide(engine, "p3", other)[0] == "allow"


def test_an_allow_bank_overrides_other_banks_for_the_same_media(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    footage, execution = photo_file(7), photo_file(8)
    engine.banks.create("terror", label="execution-result")
    engine.banks.create("news", action="allow", label="news-footage")
    engine.banks.add_files("terror", [footage, execution])
    engine.banks.add_files("news", [footage])

    verdict, reasons = decide(engine, "news-post", footage)
    assert verdict == "allow"
    assert {r["bank"] for r in reasons} == {"news"}  # a reason per type (pdq, md5, sha256)
    assert "known-benign" in str(reasons[0]["detail"])
    assert "overrides its matches to terror" in str(reasons[0]["detail"])
    # The other photo of the same post is not shielded by it.
    raw = {"id": "both", "media": [{"path": str(footage)}, {"path": str(execution)}]}
    both = engine.decide_post(parse_post(raw, base=Path("."), source="test")).to_json()
    assert both["verdict"] == "remove"
    assert {r["bank"] for r in both["reasons"]} == {"news", "terror"}

    engine.banks.update("news", enabled=False)
    assert decide(engine, "after", footage)[0] == "remove"


def test_a_disabled_bank_matches_nothing_and_a_ratio_matches_a_share(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    images = [photo_file(20 + i) for i in range(12)]
    engine.banks.create("terror")
    engine.banks.add_files("terror", images)
    bank = engine.banks.update("terror", enabled=False)
    assert (bank.enabled, bank.enabled_ratio) == (False, 0.0)
    assert all(decide(engine, f"off-{i}", p)[0] == "allow" for i, p in enumerate(images))

    engine.banks.update("terror", enabled_ratio=0.5)
    first = [decide(engine, f"half-{i}", p)[0] for i, p in enumerate(images)]
    second = [decide(engine, f"again-{i}", p)[0] for i, p in enumerate(images)]
    assert first == second  # the same entries each time
    assert 0 < first.count("remove") < len(images)

    engine.banks.update("terror", enabled=True)
    assert all(decide(engine, f"on-{i}", p)[0] == "remove" for i, p in enumerate(images))
    with pytest.raises(UserError, match="enabled_ratio"):
        engine.banks.update("terror", enabled_ratio=1.5)
    with pytest.raises(UserError, match="not both"):
        engine.banks.update("terror", enabled=True, enabled_ratio=1.0)


def test_rename_keeps_entries_settings_and_audit(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    image = photo_file(9)
    engine.banks.create("terror", threshold=20)
    engine.banks.create("taken")
    engine.banks.add_files("terror", [image])
    with pytest.raises(ConflictError, match="already exists"):
        engine.banks.update("terror", new_name="taken")
    with pytest.raises(UserError, match="not allowed"):
        engine.banks.update("terror", new_name="bad name")
    renamed = engine.banks.update("terror", new_name="TERROR_RESULTS", actor="alice")
    assert (renamed.name, renamed.threshold, renamed.entries) == ("TERROR_RESULTS", 20, 1)
    verdict, reasons = decide(engine, "p1", image)
    assert (verdict, reasons[0]["bank"]) == ("remove", "TERROR_RESULTS")
    history = engine.banks.audit("TERROR_RESULTS")
    assert [e.action for e in history] == ["create", "add", "update"]
    assert (history[-1].actor, history[-1].detail) == ("alice", {"name": "TERROR_RESULTS"})
    with pytest.raises(NotFoundError):
        engine.banks.audit("terror")


def test_the_audit_records_who_changed_what_and_outlives_the_bank(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    engine.banks.create("terror", actor="token:admin")
    engine.banks.add_files("terror", [photo_file(10)], actor="cli:alice")
    pdq = SignalValue("pdq", "f" * 64, 100, "original")
    (added,) = engine.banks.add_entries(
        "terror", [NewEntry([pdq], source="hand", note="from a partner")], actor="bob"
    )
    engine.banks.update_entry("terror", added, disabled_until=datetime.now(UTC) + timedelta(1))
    engine.banks.update_entry("terror", added, disabled_until=None)
    engine.banks.update("terror", label="execution", enabled=False)
    engine.banks.delete("terror", actor="carol")
    events = engine.banks.audit("terror")
    assert [(e.actor, e.action) for e in events] == [
        ("token:admin", "create"),
        ("cli:alice", "add"),
        ("bob", "add"),
        ("local", "disable"),
        ("local", "enable"),
        ("local", "update"),
        ("carol", "delete"),
    ]
    assert events[5].detail == {"label": "execution", "enabled_ratio": 0.0}
    assert events[-1].detail == {"entries": 2}
    assert [e.to_json()["id"] for e in engine.banks.audit("terror", after=events[4].id)] == [
        events[5].id,
        events[6].id,
    ]


def test_add_entries_checks_everything_before_adding_anything(engine: Engine) -> None:
    engine.banks.create("terror")
    good = NewEntry([SignalValue("pdq", "a" * 64, 90, "original")], source="x")
    with pytest.raises(UserError, match="unknown signal type 'tmk'"):
        engine.banks.add_entries(
            "terror", [good, NewEntry([SignalValue("tmk", "1", None, "original")], source="y")]
        )
    with pytest.raises(UserError, match="content_id"):
        engine.banks.add_entries("terror", [NewEntry(good.values, source="z", content_id="\0")])
    with pytest.raises(UserError, match="has no signal value"):
        engine.banks.add_entries("terror", [NewEntry([], source="z")])
    assert engine.banks.entries("terror") == []


def test_entry_commands(
    amber_cli: Callable[..., CliResult], photo_file: Callable[..., Path]
) -> None:
    assert amber_cli("bank", "create", "terror").returncode == 0
    assert amber_cli("bank", "create", "news", "--action", "allow").returncode == 0
    added = amber_cli("bank", "add", "terror", photo_file(11), "--note", "case 7")
    assert added.returncode == 0, added.stderr
    listed = amber_cli("bank", "entries", "terror", "--format", "jsonl")
    (entry,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert entry["note"] == "case 7" and entry["disabled_until"] is None
    number = str(entry["id"])

    result = amber_cli("bank", "entry", "disable", "terror", number, "--for", "30d")
    assert result.returncode == 0, result.stderr
    assert "disabled entry" in result.stderr
    shown = json.loads(
        amber_cli("bank", "entry", "show", "terror", number, "--format", "jsonl").stdout
    )
    until = datetime.fromisoformat(shown["disabled_until"])
    assert timedelta(days=29) < until - datetime.now(UTC) <= timedelta(days=30)
    assert shown["note"] == "case 7"  # --note not given: kept

    bad = amber_cli("bank", "entry", "disable", "terror", number, "--until", "2027-01-01")
    assert bad.returncode == 2 and "no time zone" in bad.stderr
    bad = amber_cli("bank", "entry", "disable", "terror", number, "--for", "soon")
    assert bad.returncode == 2 and "not a duration" in bad.stderr
    assert amber_cli("bank", "entry", "enable", "terror", number).returncode == 0
    noted = amber_cli("bank", "entry", "note", "terror", number, "FP?", "--content-id", "p-9")
    assert noted.returncode == 0, noted.stderr
    shown = json.loads(
        amber_cli("bank", "entry", "show", "terror", number, "--format", "jsonl").stdout
    )
    assert (shown["note"], shown["content_id"], shown["disabled_until"]) == ("FP?", "p-9", None)

    assert amber_cli("bank", "rename", "terror", "results").returncode == 0
    assert amber_cli("bank", "disable", "news").returncode == 0
    banks = {
        b["name"]: b
        for b in map(json.loads, amber_cli("bank", "list", "--format", "jsonl").stdout.splitlines())
    }
    assert banks["news"]["enabled"] is False and banks["news"]["action"] == "allow"
    assert set(banks) == {"news", "results"}
    assert amber_cli("bank", "entry", "delete", "results", number).returncode == 0
    missing = amber_cli("bank", "entry", "show", "results", number)
    assert missing.returncode != 0 and f"no entry {number}" in missing.stderr
    audit = [
        json.loads(line)
        for line in amber_cli("bank", "audit", "results", "--format", "jsonl").stdout.splitlines()
    ]
    assert [e["action"] for e in audit] == [
        "create",
        "add",
        "disable",
        "enable",
        "update",
        "update",
        "delete_entry",
    ]
    assert all(e["actor"].startswith("cli") for e in audit)


@pytest.fixture
def admin(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    media = tmp_path / "media"
    media.mkdir()
    app = create_app(engine, media_root=media, max_body=4_000_000)
    _, secret = engine.tokens.create("curator", parse_scopes("admin"))
    with TestClient(app, headers={"authorization": f"Bearer {secret}"}) as client:
        yield client


def test_entry_routes(admin: TestClient, engine: Engine, photo_file: Callable[..., Path]) -> None:
    assert admin.post("/v1/banks", json={"name": "terror"}).status_code == 201
    with photo_file(12).open("rb") as f:
        assert (
            admin.post("/v1/banks/terror/entries", files={"files": ("a.png", f)}).status_code == 200
        )
    (entry,) = admin.get("/v1/banks/terror/entries").json()
    url = f"/v1/banks/terror/entries/{entry['id']}"
    assert admin.get(url).json() == entry

    until = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    changed = admin.patch(url, json={"disabled_until": until, "note": "suspected FP"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["note"] == "suspected FP"
    assert datetime.fromisoformat(changed.json()["disabled_until"]) == datetime.fromisoformat(until)
    kept = admin.patch(url, json={"content_uri": "https://example.org/x"}).json()
    assert (kept["note"], kept["disabled_until"]) == (
        "suspected FP",
        changed.json()["disabled_until"],
    )
    enabled = admin.patch(url, json={"disabled_until": None}).json()
    assert enabled["disabled_until"] is None and enabled["note"] == "suspected FP"

    naive = admin.patch(url, json={"disabled_until": "2027-01-01T00:00:00"})
    assert naive.status_code == 422
    far = admin.patch(url, json={"disabled_until": "2099-01-01T00:00:00Z"})
    assert far.status_code == 400 and "days ahead" in far.json()["error"]["message"]

    renamed = admin.patch("/v1/banks/terror", json={"name": "RESULTS", "enabled": False})
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["enabled"]) == ("RESULTS", False)
    assert admin.get(url).status_code == 404
    url = url.replace("terror", "RESULTS")
    assert admin.delete(url).json()["id"] == entry["id"]
    assert admin.delete(url).status_code == 404
    imported = admin.post("/v1/banks/RESULTS/import?format=lines", content=f"pdq {'e' * 64}\n")
    assert imported.status_code == 200, imported.text
    audit = admin.get("/v1/banks/RESULTS/audit").json()
    assert [e["action"] for e in audit][-2:] == ["delete_entry", "import"]
    assert {e["actor"] for e in audit} == {"token:curator"}
    assert engine.banks.get("RESULTS").entries == 1  # the imported hash; the file's entry went


def test_an_allow_match_in_a_video_overrides_only_matches_in_the_same_seconds() -> None:
    from amber.matching import Match
    from amber.policy.conditions import BankMatch
    from amber.policy.findings import Findings

    def match(bank: str, action: str, span: tuple[float, float], entry: int) -> Match:
        return Match(
            signal_type="vpdq",
            bank=bank,
            action=action,
            label=bank,
            entry_id=entry,
            entry_source=f"{bank}.mp4",
            distance=4,
            quality=None,
            query_variant="original",
            entry_variant="original",
            media=0,
            query_span=span,
            entry_span=(0.0, span[1] - span[0]),
        )

    news = match("news", "allow", (0.0, 10.0), 1)
    overlapping = match("terror", "remove", (8.0, 20.0), 2)
    later = match("terror", "remove", (30.0, 40.0), 3)
    condition = BankMatch({"when": "bank_match"}, "rules[0]", "policy.toml")
    findings = Findings(matches=[news, overlapping, later], media_paths=["compilation.mp4"])
    fired = condition.fire(findings, "bank-match")
    assert [(r.entry, v) for r, v in fired] == [(1, "allow"), (3, "remove")]
    assert "overrides its matches to terror" in (fired[0][0].detail or "")


def test_an_import_is_audited_with_who_made_it(
    amber_cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    assert amber_cli("bank", "create", "terror").returncode == 0
    listed = tmp_path / "list.txt"
    listed.write_text("pdq " + "f" * 64 + "\n", encoding="utf-8")
    imported = amber_cli("bank", "import", "terror", listed)
    assert imported.returncode == 0, imported.stderr
    audit = amber_cli("bank", "audit", "terror", "--format", "jsonl").stdout.splitlines()
    last = json.loads(audit[-1])
    assert last["action"] == "import" and last["actor"].startswith("cli")
