"""Large imports: hash lists of more than one batch's sorting threshold, read as plain runs
(``amber.bank_formats.Plain``) beside rows with labels, kept in file order when small,
every row one entry with its row number, duplicates and bad rows counted, and the new rows
handed to the PDQ index without reading them back (``Matcher.take``) — also when another
engine wrote rows the index has not seen."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from amber.bank_formats import PLAIN_RUN, Plain, Row, SignalReader, default_formats
from amber.banks import ImportRowsError
from amber.engine import Engine, open_engine
from amber.lookup import lookup_hash
from amber.signals import SignalValue, load_signal_types
from amber.store.bulk import SORT_FROM, EntryWriter

ROWS = SORT_FROM + PLAIN_RUN + 123  # one sorted batch, several plain runs


def hashes(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(256):064x}" for _ in range(count)]


def test_big_list_every_row_one_entry_found_by_its_hash(
    engine: Engine, database: str, tmp_path: Path
) -> None:
    values = hashes(ROWS, seed=1)
    lines = ["signal_type,signal,label"]
    for i, value in enumerate(values):
        if i == 7:
            lines.append(f"pdq,{value},labelled")  # a row that is not plain, mid-run
        elif i == 9:
            lines.append(f"md5,{'e' * 32}")  # another type, mid-run
        else:
            lines.append(f"pdq,{value.upper() if i % 2 else value}")
    lines.append(f"pdq,{values[3]}")  # a duplicate
    (tmp_path / "big.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    engine.banks.create("big")

    result = engine.banks.import_file("big", tmp_path / "big.csv")

    assert (result.added, result.duplicates) == (ROWS, 1)
    assert engine.matcher.index.hashes == ROWS - 1  # the pdq rows, handed over after the commit
    for row in (0, 7, 8, 10, ROWS // 2, ROWS - 1):
        (match,) = lookup_hash(engine, "pdq", values[row]).matches
        assert (match.distance, match.entry_source) == (0, f"{tmp_path / 'big.csv'}:{row + 2}")
        entry = engine.banks.entry("big", match.entry_id)
        assert [v.value for v in entry.values] == [values[row]]
        assert entry.label == ("labelled" if row == 7 else None)
    if engine.db.dialect.name == "postgresql":  # statistics refreshed for the planner
        with engine.db.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE oid = 'entry_signals'::regclass"
            ).scalar_one()
        assert rows > ROWS * 0.9
    entries = engine.banks.entries("big", limit=10_000)
    assert all(len(e.values) == 1 for e in entries)
    # A fresh engine reads the index from disk: the handed-over rows were stored there.
    with open_engine(db=database, vault=tmp_path / "vault") as again:
        assert again.matcher.index.hashes == ROWS - 1
        (match,) = lookup_hash(again, "pdq", values[ROWS - 1]).matches
        assert match.entry_source.endswith(f":{ROWS + 1}")


def test_bad_rows_in_plain_runs_named_and_nothing_stored(engine: Engine) -> None:
    values = hashes(PLAIN_RUN + 50, seed=2)
    values[3] = "zz" + values[3][2:]
    values[PLAIN_RUN + 10] = values[PLAIN_RUN + 10][:60]
    engine.banks.create("list")

    with pytest.raises(ImportRowsError) as raised:
        engine.banks.import_text(
            "list",
            io.StringIO("\n".join(values) + "\n"),
            source="list.txt",
            format="hashes",
            signal_type="pdq",
        )

    assert [row for row, _ in raised.value.rows] == [4, PLAIN_RUN + 11]
    assert "64 hexadecimal digits" in raised.value.rows[0][1]
    assert engine.banks.entries("list") == []
    assert engine.matcher.index.hashes == 0


def test_lines_with_types_mixed_keep_file_order(engine: Engine) -> None:
    pdq = hashes(3, seed=3)
    text = (
        f"pdq {pdq[0]}\nmd5 {'a' * 32}\npdq {pdq[1]}\n# a comment\n"
        f"video_md5 {'b' * 32}\npdq {pdq[2]}\n"
    )
    engine.banks.create("mixed")

    engine.banks.import_text("mixed", io.StringIO(text), source="l.txt", format="lines")

    entries = engine.banks.entries("mixed")
    assert [(e.source, e.values[0].signal_type, e.values[0].value) for e in entries] == [
        ("l.txt:1", "pdq", pdq[0]),
        ("l.txt:2", "md5", "a" * 32),
        ("l.txt:3", "pdq", pdq[1]),
        ("l.txt:5", "md5", "b" * 32),
        ("l.txt:6", "pdq", pdq[2]),
    ]
    assert [e.id for e in entries] == sorted(e.id for e in entries)


def test_readers_give_plain_runs_only_when_asked() -> None:
    signals = load_signal_types()
    text = "signal_type,signal\n" + "".join(f"pdq,{h}\n" for h in hashes(PLAIN_RUN + 1, 4))
    csv_format = default_formats().get("amber-csv")

    rows = list(csv_format.read(io.StringIO(text), SignalReader(signals)))
    runs = list(csv_format.read(io.StringIO(text), SignalReader(signals, plain=True)))

    assert len(rows) == PLAIN_RUN + 1 and all(isinstance(r, Row) for r in rows)
    plain = [r for r in runs if isinstance(r, Plain)]
    assert len(plain) == len(runs) and [len(r.values) for r in plain] == [PLAIN_RUN, 1]
    assert plain[0].numbers[:2] == [2, 3] and plain[1].numbers == [PLAIN_RUN + 2]
    one_each = [r.values for r in rows if isinstance(r, Row)]
    assert [v.value for (v,) in one_each] == [v for r in plain for v in r.values]


def test_sync_of_a_big_list_adds_and_deletes(engine: Engine) -> None:
    values = hashes(ROWS, seed=5)
    engine.banks.create("synced")
    engine.banks.import_text(
        "synced", io.StringIO("\n".join(values)), source="a", format="hashes", signal_type="pdq"
    )
    changed = values[100:] + hashes(100, seed=6)

    result = engine.banks.import_text(
        "synced",
        io.StringIO("\n".join(changed)),
        source="b",
        format="hashes",
        signal_type="pdq",
        sync=True,
    )

    assert (result.added, result.duplicates, result.deleted) == (100, ROWS - 100, 100)
    assert lookup_hash(engine, "pdq", values[0]).matches == ()
    (match,) = lookup_hash(engine, "pdq", changed[-1]).matches
    assert match.entry_source == f"b:{len(changed)}"
    assert engine.matcher.index.hashes == ROWS


def test_rows_another_engine_wrote_first_are_read_before_the_handed_ones(
    engine: Engine, database: str, tmp_path: Path
) -> None:
    engine.banks.create("shared")
    earlier = hashes(3, seed=7)
    # Another process, with an index folder of its own: ours has not seen its rows.
    with open_engine(
        db=database, vault=tmp_path / "vault", index_dir=tmp_path / "other-index"
    ) as other:
        other.banks.import_text(
            "shared",
            io.StringIO("\n".join(earlier)),
            source="other",
            format="hashes",
            signal_type="pdq",
        )
    later = hashes(SORT_FROM, seed=8)

    engine.banks.import_text(
        "shared", io.StringIO("\n".join(later)), source="ours", format="hashes", signal_type="pdq"
    )

    assert engine.matcher.index.hashes == 3 + SORT_FROM
    for value, source in ((earlier[1], "other:2"), (later[-1], f"ours:{SORT_FROM}")):
        (match,) = lookup_hash(engine, "pdq", value).matches
        assert match.entry_source == source


def test_writer_batches_keep_ids_and_hand_every_row(engine: Engine) -> None:
    """Many batches through ``EntryWriter`` directly: plain and other entries, each
    batch's ids after the last, every value row in ``written`` with its id."""
    engine.banks.create("w")
    bank = engine.banks.get("w")
    values = hashes(2500, seed=9)
    with engine.db.begin() as conn:
        writer = EntryWriter(
            conn, bank.id, added_at=engine.clock(), versions={"pdq": 1, "md5": 1}, batch=1000
        )
        try:
            writer.add_plain("s", "pdq", list(range(1, 1201)), values[:1200])
            writer.add("s:1201", "x", [SignalValue("md5", "c" * 32)])
            writer.add_plain("s", "pdq", list(range(1202, 2502)), values[1200:])
            writer.flush()
        finally:
            writer.close()

    assert writer.added == 2501
    ids = [i for batch_ids, _ in writer.written["pdq"] for i in batch_ids]
    written = [v for _, batch in writer.written["pdq"] for v in batch]
    assert sorted(written) == sorted(values) and len(set(ids)) == 2500
    with engine.db.connect() as conn:
        stored: dict[int, str] = dict(
            conn.exec_driver_sql(
                "SELECT id, value FROM entry_signals WHERE signal_type = 'pdq'"
            ).all()
        )
    assert stored == dict(zip(ids, written, strict=True))
