"""Exchanges end to end, on both backends: a local hash file (python-threatexchange's file
format) changed between fetches, and a ThreatExchange-style server on a real local socket
(``threatexchange_server``) with paged updates, deletions and opinion changes; a fetch that
fails on page 3 and resumes from its checkpoint; a crashed batch cleaned up; matching
through the engine; the HMA-shaped calls; the command line and the HTTP API. Nothing
leaves the machine."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from amber.api.app import create_app
from amber.engine import Engine
from amber.errors import ConflictError, NotFoundError, UserError
from amber.exchanges import SourceError
from amber.posts import media_post
from amber.store.tables import exchanges
from amber.tokens import parse_scopes
from conftest import CliResult
from threatexchange_server import (
    OTHER_APP,
    OUR_APP,
    PRIVACY_GROUP,
    TOKEN,
    ThreatExchangeServer,
)

PDQ = [f"{i:02x}" * 32 for i in range(1, 13)]
MD5 = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def server() -> Iterator[ThreatExchangeServer]:
    with ThreatExchangeServer(page_size=3) as found:
        yield found


def _te(engine: Engine, server: ThreatExchangeServer, name: str = "TE_COLLAB") -> None:
    engine.exchanges.create(
        name,
        api="fb_threatexchange",
        config={"privacy_group": PRIVACY_GROUP},
        endpoint=server.endpoint,
        credentials={"api_token": TOKEN},
    )


def _bank_values(engine: Engine, bank: str) -> Counter[tuple[str, str]]:
    """Each (type, value) of the bank's entries, counted: a doubled entry shows as 2."""
    return Counter(
        (v.signal_type, v.value) for e in engine.banks.entries(bank, limit=10_000) for v in e.values
    )


def test_a_local_file_exchange_follows_the_file(engine: Engine, tmp_path: Path) -> None:
    hashes = tmp_path / "hashes.txt"
    hashes.write_text(
        f"pdq {PDQ[0]}\npdq {PDQ[1]}\nvideo_md5 {MD5}\nurl https://example.com/x\npdq nothex\n",
        encoding="utf-8",
    )
    engine.exchanges.create("FILE_FEED", api="local_file", config={"filename": str(hashes)})
    first = engine.exchanges.fetch("FILE_FEED")
    assert (first.counts.added, first.counts.removed, first.counts.invalid) == (3, 0, 1)
    assert first.counts.skipped == {"url": 1} and first.up_to_date
    assert _bank_values(engine, "FILE_FEED") == {
        ("pdq", PDQ[0]): 1,
        ("pdq", PDQ[1]): 1,
        ("md5", MD5): 1,
    }
    entry = engine.banks.entries("FILE_FEED")[0]
    assert entry.source == "exchange:FILE_FEED" and entry.metadata["exchange"] == "FILE_FEED"

    # A line gone is an upstream deletion; a new line an addition; the rest stays as it is.
    hashes.write_text(f"pdq {PDQ[1]}\nvideo_md5 {MD5}\npdq {PDQ[2]}\n", encoding="utf-8")
    ids_before = {e.id for e in engine.banks.entries("FILE_FEED")}
    second = engine.exchanges.fetch("FILE_FEED")
    assert (second.counts.added, second.counts.removed) == (1, 1)
    assert _bank_values(engine, "FILE_FEED") == {
        ("pdq", PDQ[1]): 1,
        ("pdq", PDQ[2]): 1,
        ("md5", MD5): 1,
    }
    assert len(ids_before & {e.id for e in engine.banks.entries("FILE_FEED")}) == 2

    status = engine.exchanges.status("FILE_FEED")
    assert (status.items, status.entries, status.fetches, status.failures) == (3, 3, 2, 0)
    assert status.last_succeeded and status.up_to_date and status.last_error is None
    # Who changed the bank is in its audit.
    assert {e.actor for e in engine.banks.audit("FILE_FEED")} >= {"exchange:FILE_FEED"}

    hashes.unlink()  # the source fails: recorded, the bank is left as it was
    with pytest.raises(SourceError, match="No such file"):
        engine.exchanges.fetch("FILE_FEED")
    status = engine.exchanges.status("FILE_FEED")
    assert status.last_succeeded is False and "No such file" in (status.last_error or "")
    assert status.entries == 3 and status.failures == 1 and not status.up_to_date


def test_threatexchange_pages_deletions_and_opinions(
    engine: Engine, server: ThreatExchangeServer
) -> None:
    for value in PDQ[:7]:
        server.put(value)
    server.put(MD5, "HASH_VIDEO_MD5")
    server.put("https://example.com/a", "URI")  # a type amber does not hash
    server.put(PDQ[7], opinions=[(OTHER_APP, "NON_MALICIOUS")])  # a known false positive
    _te(engine, server)
    first = engine.exchanges.fetch("TE_COLLAB")
    assert first.counts.fetched == 10 and first.counts.skipped == {"URI": 1}
    assert (first.counts.added, first.counts.held) == (8, 1)
    expected = {("pdq", v): 1 for v in PDQ[:7]} | {("md5", MD5): 1}
    assert _bank_values(engine, "TE_COLLAB") == expected
    status = engine.exchanges.status("TE_COLLAB")
    assert status.checkpoint_at is not None and status.checkpoint is not None
    reached = int(status.checkpoint_at.timestamp())
    assert reached == server.time_of(PDQ[7])

    server.delete(PDQ[0])  # deleted upstream
    server.set_opinion(PDQ[1], OUR_APP, "NON_MALICIOUS")  # we mark a false positive
    server.set_opinion(PDQ[2], OUR_APP, "MALICIOUS")  # we agree: stays
    server.set_opinion(PDQ[3], OTHER_APP, None)  # its only positive opinion withdrawn
    server.set_opinion(PDQ[4], 777, "NON_MALICIOUS")  # disputed by another member
    server.set_opinion(PDQ[7], OTHER_APP, "MALICIOUS")  # no longer a false positive
    second = engine.exchanges.fetch("TE_COLLAB")
    assert (second.counts.removed, second.counts.held, second.counts.added) == (2, 2, 1)
    expected = {("pdq", v): 1 for v in (PDQ[2], PDQ[5], PDQ[6], PDQ[7])} | {("md5", MD5): 1}
    assert _bank_values(engine, "TE_COLLAB") == expected
    assert server.start_times[-1] == reached  # resumed at the checkpoint
    status = engine.exchanges.status("TE_COLLAB")
    assert (status.items, status.entries, status.held) == (7, 5, 2)

    server.set_opinion(PDQ[1], OUR_APP, None)  # we withdraw our false-positive mark
    third = engine.exchanges.fetch("TE_COLLAB")
    assert third.counts.added == 1
    assert _bank_values(engine, "TE_COLLAB")[("pdq", PDQ[1])] == 1

    # Nothing new upstream: up to date, nothing changes.
    before = engine.exchanges.status("TE_COLLAB").checkpoint
    fourth = engine.exchanges.fetch("TE_COLLAB")
    assert fourth.succeeded and fourth.up_to_date and fourth.counts.added == 0
    after = engine.exchanges.status("TE_COLLAB").checkpoint
    # the position upstream is unchanged; pytx's ``last_fetch_time`` is when the fetch ran
    # (wall-clock seconds), so it moves on when the second has changed meanwhile
    assert before is not None and after is not None
    assert after["last_fetch_time"] >= before["last_fetch_time"]
    assert {k: v for k, v in after.items() if k != "last_fetch_time"} == {
        k: v for k, v in before.items() if k != "last_fetch_time"
    }
    hma = engine.exchanges.status("TE_COLLAB").to_hma()
    assert hma["last_fetch_succeeded"] is True and hma["up_to_date"] is True
    assert hma["checkpoint_ts"] == server.time_of(PDQ[1]) and hma["fetched_items"] == 7


def test_an_empty_source_is_up_to_date(engine: Engine, server: ThreatExchangeServer) -> None:
    _te(engine, server)  # the server answers an empty page, which pytx alone asserts against
    result = engine.exchanges.fetch("TE_COLLAB")
    assert result.succeeded and result.up_to_date and result.counts.fetched == 0
    assert engine.exchanges.status("TE_COLLAB").checkpoint is None


def test_a_fetch_that_fails_on_page_3_resumes_from_its_checkpoint(
    engine: Engine, server: ThreatExchangeServer
) -> None:
    for value in PDQ[:10]:
        server.put(value)
    _te(engine, server)
    server.fail_page = 3
    with pytest.raises(SourceError, match="500 Server Error"):
        engine.exchanges.fetch("TE_COLLAB", batch_size=2)
    status = engine.exchanges.status("TE_COLLAB")
    assert status.last_succeeded is False and "500" in (status.last_error or "")
    assert TOKEN.split("|")[1] not in (status.last_error or "")  # the token is not kept
    assert status.entries == 6 and not status.up_to_date  # pages 1 and 2 are kept
    assert int(status.checkpoint_at.timestamp()) == server.time_of(PDQ[5])  # type: ignore[union-attr]

    resumed = engine.exchanges.fetch("TE_COLLAB", batch_size=2)
    assert server.start_times == [None, server.time_of(PDQ[5])]
    assert resumed.succeeded and resumed.counts.added == 4
    assert _bank_values(engine, "TE_COLLAB") == {("pdq", v): 1 for v in PDQ[:10]}
    assert engine.exchanges.status("TE_COLLAB").failures == 1

    # Failing before the first batch is full keeps the pages that came whole.
    server.put_many((v, "HASH_PDQ") for v in PDQ[10:12])
    server.delete_many((v, "HASH_PDQ") for v in PDQ[:4])
    server.fail_page = 3
    with pytest.raises(SourceError):
        engine.exchanges.fetch("TE_COLLAB")
    engine.exchanges.fetch("TE_COLLAB")
    assert _bank_values(engine, "TE_COLLAB") == {("pdq", v): 1 for v in PDQ[4:12]}


def test_entries_a_crashed_batch_added_are_not_doubled(
    engine: Engine, server: ThreatExchangeServer
) -> None:
    for value in PDQ[:3]:
        server.put(value)
    _te(engine, server)
    engine.exchanges.fetch("TE_COLLAB")
    server.put_many((v, "HASH_PDQ") for v in PDQ[3:5])
    # What a process killed between adding a batch's entries and recording them leaves:
    # the entries, the batch's mark, and the old checkpoint.
    with engine.db.connect() as conn:
        highest = conn.execute(sa.text("SELECT max(id) FROM bank_entries")).scalar()
    from amber.banks import NewEntry
    from amber.signals import SignalValue

    engine.banks.add_entries(
        "TE_COLLAB",
        [NewEntry([SignalValue("pdq", v)], source="exchange:TE_COLLAB") for v in PDQ[3:5]],
    )
    with engine.db.begin() as conn:
        conn.execute(exchanges.update().values(recover_after=highest))
    assert _bank_values(engine, "TE_COLLAB")[("pdq", PDQ[3])] == 1
    engine.exchanges.fetch("TE_COLLAB")
    assert _bank_values(engine, "TE_COLLAB") == {("pdq", v): 1 for v in PDQ[:5]}
    assert engine.exchanges.status("TE_COLLAB").entries == 5


def test_an_entry_deleted_here_is_not_brought_back(
    engine: Engine, server: ThreatExchangeServer
) -> None:
    server.put(PDQ[0])
    server.put(PDQ[1])
    _te(engine, server)
    engine.exchanges.fetch("TE_COLLAB")
    gone = next(e for e in engine.banks.entries("TE_COLLAB") if e.values[0].value == PDQ[0])
    engine.banks.delete_entry("TE_COLLAB", gone.id)
    server.set_opinion(PDQ[0], 777, "MALICIOUS")  # the record changes upstream
    engine.exchanges.fetch("TE_COLLAB")
    assert _bank_values(engine, "TE_COLLAB") == {("pdq", PDQ[1]): 1}
    assert engine.exchanges.status("TE_COLLAB").removed == 1
    server.delete(PDQ[0])  # deleted upstream, then shared again: a new record
    engine.exchanges.fetch("TE_COLLAB")
    server.put(PDQ[0])
    engine.exchanges.fetch("TE_COLLAB")
    assert _bank_values(engine, "TE_COLLAB") == {("pdq", PDQ[0]): 1, ("pdq", PDQ[1]): 1}


def test_matching_follows_the_exchange(
    engine: Engine, server: ThreatExchangeServer, photo_file: Callable[..., Path]
) -> None:
    image = photo_file(41, "shared.png")
    hashed = engine.hash_media(media_post(image, "probe", source="test"))[0]
    pdq = hashed.original("pdq").value  # type: ignore[union-attr]
    server.put(pdq)
    _te(engine, server)
    verdicts = []

    def scan(post_id: str) -> str:
        [result] = engine.scan([media_post(image, post_id, source="test")])
        return result.outcome.verdict.value  # type: ignore[union-attr]

    engine.exchanges.fetch("TE_COLLAB")
    verdicts.append(scan("p1"))
    server.set_opinion(pdq, OUR_APP, "NON_MALICIOUS")  # we call it a false positive
    engine.exchanges.fetch("TE_COLLAB")
    verdicts.append(scan("p2"))
    server.set_opinion(pdq, OUR_APP, None)
    engine.exchanges.fetch("TE_COLLAB")
    verdicts.append(scan("p3"))
    server.delete(pdq)  # upstream deletes it
    engine.exchanges.fetch("TE_COLLAB")
    verdicts.append(scan("p4"))
    assert verdicts == ["remove", "allow", "remove", "allow"]


def test_one_exchange_failing_never_stops_the_others(
    engine: Engine, server: ThreatExchangeServer, tmp_path: Path
) -> None:
    server.put(PDQ[0])
    engine.exchanges.create(
        "A_WRONG_TOKEN",
        api="fb_threatexchange",
        config={"privacy_group": PRIVACY_GROUP},
        endpoint=server.endpoint,
        credentials={"api_token": "1111111111|" + "x" * 24},
    )
    engine.exchanges.create(
        "B_MISSING_FILE", api="local_file", config={"filename": str(tmp_path / "nope")}
    )
    engine.exchanges.create("C_SAMPLE", api="sample")
    engine.exchanges.create("D_OFF", api="sample", enabled=False)
    results = {r.exchange: r for r in engine.exchanges.fetch_all()}
    assert set(results) == {"A_WRONG_TOKEN", "B_MISSING_FILE", "C_SAMPLE"}  # D is disabled
    assert "400 Client Error" in (results["A_WRONG_TOKEN"].error or "")
    assert "x" * 24 not in (results["A_WRONG_TOKEN"].error or "")
    assert not results["B_MISSING_FILE"].succeeded
    assert results["C_SAMPLE"].succeeded and results["C_SAMPLE"].counts.added > 0
    statuses = {s.exchange.name: s for s in engine.exchanges.statuses()}
    assert statuses["A_WRONG_TOKEN"].last_succeeded is False
    assert statuses["D_OFF"].last_succeeded is None and statuses["D_OFF"].fetches == 0
    with pytest.raises(UserError, match="disabled"):
        engine.exchanges.fetch("D_OFF")
    assert engine.exchanges.fetch_all(["D_OFF", "NOPE"])[1].error.startswith("no exchange")  # type: ignore[union-attr]


def test_a_running_fetch_is_not_run_twice(engine: Engine) -> None:
    engine.exchanges.create("SAMPLES", api="sample")
    now = engine.clock()
    with engine.db.begin() as conn:
        conn.execute(exchanges.update().values(running_since=now, heartbeat_at=now))
    with pytest.raises(ConflictError, match="is running"):
        engine.exchanges.fetch("SAMPLES")
    assert engine.exchanges.status("SAMPLES").to_hma()["running_fetch_start_ts"] == int(
        now.timestamp()
    )
    with engine.db.begin() as conn:  # a fetch that died long ago: taken over
        conn.execute(exchanges.update().values(heartbeat_at=now.replace(year=now.year - 1)))
    assert engine.exchanges.fetch("SAMPLES").succeeded


def test_what_hma_routes_need(engine: Engine) -> None:
    names = [a.api.name for a in engine.exchanges.api_types()]
    assert {"sample", "fb_threatexchange", "local_file", "ncmec"} <= set(names)
    assert engine.exchanges.api_type("sample").to_hma() == {
        "supports_authentification": False,
        "has_set_authentification": False,
    }
    assert engine.exchanges.api_type("fb_threatexchange").to_hma() == {
        "supports_authentification": True,
        "has_set_authentification": False,
    }
    done = engine.exchanges.set_credentials(
        "fb_threatexchange", {"api_token": "12345789|000000000000"}
    )
    assert done.to_hma()["has_set_authentification"] is True
    assert engine.exchanges.api_type("fb_threatexchange").has_credentials
    assert "000000000000" not in json.dumps([a.to_json() for a in engine.exchanges.api_types()])
    engine.exchanges.set_credentials("fb_threatexchange", {})
    assert not engine.exchanges.api_type("fb_threatexchange").has_credentials
    with pytest.raises(UserError, match="takes no credentials"):
        engine.exchanges.set_credentials("sample", {"x": 1})
    with pytest.raises(UserError, match="api_token"):
        engine.exchanges.set_credentials("fb_threatexchange", {"token": "x"})

    sample = engine.exchanges.api_type("sample").api.schema()
    assert sample == {"config_schema": {"fields": []}, "credentials_schema": None}
    te = engine.exchanges.api_type("fb_threatexchange").api.schema()
    group = {f["name"]: f for f in te["config_schema"]["fields"]}["privacy_group"]
    assert group["type"] == "number" and group["required"] is True
    token = {f["name"]: f for f in te["credentials_schema"]["fields"]}["api_token"]
    assert token["type"] == "string"

    created = engine.exchanges.create("FOO_EXCHANGE", api="sample")
    assert created.bank == "FOO_EXCHANGE" and engine.banks.get("FOO_EXCHANGE").entries == 0
    assert created.to_hma() == {"name": "FOO_EXCHANGE", "api": "sample", "enabled": True}
    assert set(engine.exchanges.status("FOO_EXCHANGE").to_hma()) == {
        "checkpoint_ts",
        "running_fetch_start_ts",
        "last_fetch_complete_ts",
        "last_fetch_succeeded",
        "up_to_date",
        "fetched_items",
    }
    with pytest.raises(ConflictError):
        engine.exchanges.create("FOO_EXCHANGE", api="sample")
    with pytest.raises(UserError, match="privacy_group"):
        engine.exchanges.create("TX", api="fb_threatexchange", config={"privacy_group": "x"})
    with pytest.raises(UserError, match="no setting 'privacy_grop'"):
        engine.exchanges.create("TX", api="fb_threatexchange", config={"privacy_grop": 1})
    with pytest.raises(UserError, match="takes no endpoint"):
        engine.exchanges.create("TX", api="sample", endpoint="http://127.0.0.1:1")
    with pytest.raises(NotFoundError, match="known: "):
        engine.exchanges.create("TX", api="nope")
    assert engine.exchanges.update("FOO_EXCHANGE", enabled=False).enabled is False
    engine.exchanges.delete("FOO_EXCHANGE")
    with pytest.raises(NotFoundError):
        engine.exchanges.status("FOO_EXCHANGE")
    assert engine.banks.get("FOO_EXCHANGE").name == "FOO_EXCHANGE"  # the bank stays


def test_the_command_line(
    amber_cli: Callable[..., CliResult], server: ThreatExchangeServer, tmp_path: Path
) -> None:
    server.put(PDQ[0])
    server.put("https://example.com/a", "URI")
    (tmp_path / "te.json").write_text(json.dumps({"privacy_group": PRIVACY_GROUP}))
    (tmp_path / "creds.json").write_text(json.dumps({"api_token": TOKEN}))
    added = amber_cli(
        "exchange",
        "add",
        "TE_COLLAB",
        "--api",
        "fb_threatexchange",
        "--config",
        "@te.json",
        "--credentials",
        "@creds.json",
        "--endpoint",
        server.endpoint,
        "--label",
        "shared",
    )
    assert added.returncode == 0, added.stderr
    assert "filling new bank 'TE_COLLAB'" in added.stderr and TOKEN not in added.stderr
    (tmp_path / "hashes.txt").write_text(f"pdq {PDQ[1]}\n")
    assert (
        amber_cli(
            "exchange",
            "add",
            "FILE_FEED",
            "--api",
            "local_file",
            "--bank",
            "TE_COLLAB",
            "--config",
            '{"filename": "hashes.txt"}',
        ).returncode
        == 0
    )

    fetched = amber_cli("exchange", "fetch", "--format", "jsonl")
    assert fetched.returncode == 0, fetched.stderr
    rows = {r["exchange"]: r for r in map(json.loads, fetched.stdout.splitlines())}
    assert rows["TE_COLLAB"]["added"] == 1 and rows["TE_COLLAB"]["skipped"] == {"URI": 1}
    assert rows["FILE_FEED"]["added"] == 1 and "fetching TE_COLLAB" in fetched.stderr

    listed = amber_cli("exchange", "list")
    assert listed.returncode == 0 and "fb_threatexchange" in listed.stdout and "ok" in listed.stdout
    status = amber_cli("exchange", "status", "TE_COLLAB", "--format", "jsonl")
    [one] = map(json.loads, status.stdout.splitlines())
    assert one["last_fetch"]["succeeded"] is True and one["entries"] == 1
    assert TOKEN not in status.stdout and "api_token" not in status.stdout
    apis = amber_cli("exchange", "apis")
    assert "fb_threatexchange" in apis.stdout and "privacy_group*" in apis.stdout
    assert "set" in amber_cli("exchange", "credentials", "fb_threatexchange").stderr

    server.fail_page = 1
    failed = amber_cli("exchange", "fetch", "TE_COLLAB", "FILE_FEED")
    assert failed.returncode == 1
    assert "Error: TE_COLLAB: HTTPError: 500" in failed.stderr and "Traceback" not in failed.stderr
    assert "failed" in amber_cli("exchange", "status").stdout

    for args, message in (
        (("exchange", "add", "X", "--api", "nope"), "unknown exchange API 'nope'"),
        (("exchange", "add", "X", "--api", "sample", "--config", "{nope"), "--config is not JSON"),
        (("exchange", "add", "X", "--api", "sample", "--config", "[]"), "not an object"),
        (("exchange", "add", "X", "--api", "sample", "--config", "@missing.json"), "cannot read"),
        (("exchange", "status", "NOPE"), "no exchange called 'NOPE'"),
        (("exchange", "fetch", "--format", "xml"), "--format 'xml' is unknown"),
    ):
        result = amber_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr

    removed = amber_cli("exchange", "remove", "FILE_FEED")
    assert removed.returncode == 0 and "kept" in removed.stderr
    assert amber_cli("exchange", "update", "TE_COLLAB", "--disable").returncode == 0
    assert "no" in amber_cli("exchange", "list").stdout


def test_the_http_api_and_metrics(engine: Engine, server: ThreatExchangeServer) -> None:
    server.put(PDQ[0])
    secret = engine.tokens.create("admin", parse_scopes("admin"))[1]
    ingest = engine.tokens.create("ingest", parse_scopes("ingest"))[1]
    client = TestClient(create_app(engine), headers={"authorization": f"Bearer {secret}"})
    assert (
        client.get("/v1/exchanges", headers={"authorization": f"Bearer {ingest}"}).status_code
        == 403
    )

    apis = {a["name"]: a for a in client.get("/v1/exchanges/apis").json()}
    assert (
        apis["fb_threatexchange"]["takes_endpoint"]
        and not apis["fb_threatexchange"]["has_credentials"]
    )
    put = client.put(
        "/v1/exchanges/apis/fb_threatexchange/credentials",
        json={"credentials": {"api_token": TOKEN}},
    )
    assert put.status_code == 200 and put.json()["has_credentials"] and TOKEN not in put.text
    created = client.post(
        "/v1/exchanges",
        json={
            "name": "TE_COLLAB",
            "api": "fb_threatexchange",
            "config": {"privacy_group": PRIVACY_GROUP},
            "endpoint": server.endpoint,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["last_fetch"]["succeeded"] is None
    assert (
        client.post("/v1/exchanges", json={"name": "TE_COLLAB", "api": "sample"}).status_code == 409
    )
    bad = client.post("/v1/exchanges", json={"name": "X", "api": "fb_threatexchange", "config": {}})
    assert bad.status_code == 400 and "privacy_group" in bad.json()["error"]["message"]

    fetched = client.post("/v1/exchanges/TE_COLLAB/fetch")
    assert fetched.status_code == 200 and fetched.json()["added"] == 1
    one = client.get("/v1/exchanges/TE_COLLAB").json()
    assert one["entries"] == 1 and one["last_fetch"]["counts"]["added"] == 1
    assert [e["name"] for e in client.get("/v1/exchanges").json()] == ["TE_COLLAB"]

    metrics = client.get("/v1/metrics").text
    assert 'amber_exchange_last_fetch_success{exchange="TE_COLLAB"} 1.0' in metrics
    assert 'amber_exchange_items{exchange="TE_COLLAB",state="entries"} 1.0' in metrics
    assert 'amber_exchange_fetch_failures_total{exchange="TE_COLLAB"} 0.0' in metrics

    server.fail_page = 1
    failed = client.post("/v1/exchanges/TE_COLLAB/fetch")
    assert failed.status_code == 502 and "500 Server Error" in failed.json()["error"]["message"]
    metrics = client.get("/v1/metrics").text
    assert 'amber_exchange_last_fetch_success{exchange="TE_COLLAB"} 0.0' in metrics
    assert 'amber_exchange_fetch_failures_total{exchange="TE_COLLAB"} 1.0' in metrics

    patched = client.patch("/v1/exchanges/TE_COLLAB", json={"enabled": False})
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    assert client.post("/v1/exchanges/TE_COLLAB/fetch").status_code == 400
    assert client.get("/v1/exchanges/NOPE").status_code == 404
    deleted = client.delete("/v1/exchanges/TE_COLLAB", params={"delete_bank": True})
    assert deleted.status_code == 200 and deleted.json()["bank_deleted"] is True
    assert client.get("/v1/banks/TE_COLLAB").status_code == 404
    cleared = client.delete("/v1/exchanges/apis/fb_threatexchange/credentials")
    assert cleared.json()["has_credentials"] is False
