"""Banks: create, add files, import and export CSV, list; bad input leaves nothing behind."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from amber.banks import MAX_LABEL_LENGTH, BankAction, ImportRowsError
from amber.engine import Engine
from amber.errors import ConflictError, NotFoundError, UserError
from amber.signals.pdq import PdqSignal
from amber.store.tables import bank_entries, banks


def test_create_and_list(engine: Engine) -> None:
    engine.banks.create("known", action="restrict", label="execution", threshold=20)
    engine.banks.create("other")
    banks = engine.banks.all()
    assert [(b.name, b.action, b.label, b.threshold, b.entries) for b in banks] == [
        ("known", BankAction.restrict, "execution", 20, 0),
        ("other", BankAction.remove, "other", PdqSignal.DEFAULT_THRESHOLD, 0),
    ]
    assert banks[0].created_at.tzinfo is not None


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"name": "bad name"}, UserError, "not allowed"),
        ({"name": "x", "action": "delete"}, UserError, "action 'delete' is unknown"),
        ({"name": "x", "threshold": 64}, UserError, "out of range"),
        ({"name": "x", "threshold": -1}, UserError, "out of range"),
        ({"name": "x", "label": "  "}, UserError, "label is empty"),
        ({"name": "dup"}, ConflictError, "already exists"),
    ],
)
def test_create_rejects_bad_values(
    engine: Engine, kwargs: dict[str, object], error: type[Exception], words: str
) -> None:
    engine.banks.create("dup")
    with pytest.raises(error, match=words):
        engine.banks.create(**kwargs)  # type: ignore[arg-type]
    assert [b.name for b in engine.banks.all()] == ["dup"]


def test_unknown_bank_names_the_known_ones(engine: Engine) -> None:
    engine.banks.create("alpha")
    with pytest.raises(NotFoundError, match=r"no bank called 'beta' \(banks: alpha"):
        engine.banks.get("beta")


def test_add_files_and_folders(
    engine: Engine, photo_file: Callable[..., Path], tmp_path: Path
) -> None:
    engine.banks.create("known")
    first = photo_file(1, "a.png")
    photo_file(2, "sub/b.jpg")
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    result = engine.banks.add_files("known", [first, tmp_path / "images"])
    assert sorted(Path(p).name for p in result.added) == ["a.png", "b.jpg"]
    assert [Path(p).name for p in result.duplicates] == ["a.png"]  # given twice
    [failure] = result.failures
    assert failure.path.endswith("notes.txt") and failure.reason
    assert engine.banks.get("known").entries == 2
    exported = io.StringIO()
    engine.banks.export_csv("known", exported)
    rows = list(csv.DictReader(io.StringIO(exported.getvalue())))
    assert sorted(r["signal_type"] for r in rows) == [
        "md5",
        "md5",
        "orb",
        "orb",
        "pdq",
        "pdq",
        "sha256",
        "sha256",
    ]
    assert all(r["label"] == "known" for r in rows)
    # a file's values are one entry (its keypoints one cell); its PDQ hash keeps its quality
    assert sorted(Counter(r["entry"] for r in rows).values()) == [4, 4]
    assert all(r["quality"].isdigit() == (r["signal_type"] == "pdq") for r in rows)


def test_add_to_missing_path_is_an_error(engine: Engine, tmp_path: Path) -> None:
    engine.banks.create("known")
    with pytest.raises(UserError, match="does not exist"):
        engine.banks.add_files("known", [tmp_path / "nope"])


PDQ_A = "f" * 64
PDQ_B = "0123456789abcdef" * 4


def test_import_export_round_trip(engine: Engine) -> None:
    engine.banks.create("shared", label="gifct")
    text = (
        f"signal_type,signal,label\npdq,{PDQ_A.upper()},terror\n\n"
        f"md5,{'a' * 32}\nvideo_md5,{'b' * 32},x\nsha256,{'c' * 64}\npdq,{PDQ_A}\n"
    )
    result = engine.banks.import_csv("shared", io.StringIO(text), source="in.csv")
    assert (result.added, result.duplicates) == (4, 1)
    out = io.StringIO()
    assert engine.banks.export_csv("shared", out) == 4
    assert out.getvalue().splitlines() == [
        "signal_type,signal,label,entry,quality",
        f"pdq,{PDQ_A},terror,1,",
        f"md5,{'a' * 32},gifct,2,",
        f"md5,{'b' * 32},x,3,",
        f"sha256,{'c' * 64},gifct,4,",
    ]
    # The exported file imports into another bank unchanged.
    engine.banks.create("copy")
    again = engine.banks.import_csv("copy", io.StringIO(out.getvalue()), source="out.csv")
    assert again.added == 4


# (import strips a label, so a leading tab or CR never reaches a bank; a CR inside does)
FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "a\rb", "'quoted"]


def test_export_neutralises_spreadsheet_formulas_and_imports_its_own_export(
    engine: Engine,
) -> None:
    engine.banks.create("shared", label="=cmd|' /C calc'!A0")
    given = io.StringIO()
    writer = csv.writer(given)  # quotes a CR inside a label
    for i, label in enumerate(FORMULAS, start=1):
        writer.writerow(["md5", f"{i:032x}", label])
    writer.writerow(["md5", f"{99:032x}", ""])  # takes the bank's label, itself a formula
    engine.banks.import_csv("shared", io.StringIO(given.getvalue()), source="in.csv")
    exported = io.StringIO()
    engine.banks.export_csv("shared", exported)
    cells = [c for row in csv.reader(io.StringIO(exported.getvalue())) for c in row]
    # OWASP: a cell a spreadsheet would run as a formula starts with a quote instead
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], cells
    assert "'=cmd|' /C calc'!A0" in cells and "''quoted" in cells and "a\rb" in cells
    # amber reads its own export back to the same labels
    engine.banks.create("copy")
    engine.banks.import_csv("copy", io.StringIO(exported.getvalue()), source="out.csv")
    again = io.StringIO()
    engine.banks.export_csv("copy", again)

    def without_entry(text: str) -> list[list[str]]:
        return [row[:3] + row[4:] for row in csv.reader(io.StringIO(text))]

    assert without_entry(again.getvalue()) == without_entry(exported.getvalue())
    query = sa.select(bank_entries.c.label).join(banks, banks.c.id == bank_entries.c.bank_id)
    with engine.db.connect() as conn:
        labels = set(conn.execute(query.where(banks.c.name == "copy")).scalars())
    assert labels == {*FORMULAS, "=cmd|' /C calc'!A0"}


def test_bad_import_rows_are_all_named_and_nothing_is_imported(engine: Engine) -> None:
    engine.banks.create("shared")
    engine.banks.import_csv("shared", io.StringIO(f"pdq,{PDQ_B}\n"), source="first.csv")
    text = (
        f"pdq,{PDQ_A}\n"  # good
        "pdq,abc\n"  # too short
        "sha1,deadbeef\n"  # unknown type
        f"md5\n"  # one column
        f"md5,{'g' * 32}\n"  # not hex
        f"pdq,{PDQ_A},a,b\n"
    )  # four columns
    with pytest.raises(ImportRowsError) as info:
        engine.banks.import_csv("shared", io.StringIO(text), source="bad.csv")
    assert [row for row, _ in info.value.rows] == [2, 3, 4, 5, 6]
    message = str(info.value)
    assert "bad.csv row 2: pdq value 'abc'" in message
    assert "bad.csv row 3: unknown signal type 'sha1'" in message
    assert "nothing was imported" in message
    assert engine.banks.get("shared").entries == 1


LONG_LABEL = "l" * (MAX_LABEL_LENGTH + 1)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"name": "x", "label": LONG_LABEL}, f"bank label '{'l' * 60}...' is 201 characters"),
        ({"name": "x", "label": "a\x00b"}, r"bank label 'a\\x00b' contains a NUL"),
        ({"name": "x", "label": "a\ud800"}, "bank label .* contains a lone surrogate"),
        ({"name": "a\x00b"}, "bank name 'a\\\\x00b' is not allowed"),
        ({"name": "n" * 201}, "is not allowed"),
    ],
)
def test_labels_and_names_no_database_can_hold_are_user_errors(
    engine: Engine, kwargs: dict[str, object], words: str
) -> None:
    with pytest.raises(UserError, match=words):
        engine.banks.create(**kwargs)  # type: ignore[arg-type]
    assert engine.banks.all() == []
    engine.banks.create("kept", label="old")
    with pytest.raises(UserError, match="bank label"):
        engine.banks.update("kept", label=str(kwargs.get("label", LONG_LABEL)))
    assert engine.banks.get("kept").label == "old"
    assert engine.banks.create("y", label="l" * MAX_LABEL_LENGTH).label == "l" * MAX_LABEL_LENGTH


def test_label_limit_is_the_column_size() -> None:
    for column in (banks.c.label, bank_entries.c.label):
        assert getattr(column.type, "length", None) == MAX_LABEL_LENGTH


def test_import_rows_with_labels_no_database_can_hold_are_named(engine: Engine) -> None:
    engine.banks.create("shared")
    text = (
        f"pdq,{PDQ_A},fine\n"
        f"md5,{'a' * 32},{LONG_LABEL}\n"
        f"md5,{'b' * 32},nul\x00label\n"
        f"md5,{'c' * 32},lone\ud800\n"
        f"md5\x00,{'d' * 32}\n"
        f"md5,{'e' * 32}\x00\n"
    )
    with pytest.raises(ImportRowsError) as info:
        engine.banks.import_csv("shared", io.StringIO(text), source="bad.csv")
    assert [row for row, _ in info.value.rows] == [2, 3, 4, 5, 6]
    message = str(info.value)
    assert "bad.csv row 2: label 'llll" in message and "201 characters long" in message
    assert "bad.csv row 3: label 'nul\\x00label' contains a NUL character" in message
    assert "bad.csv row 4: label 'lone\\ud800' contains a lone surrogate" in message
    assert engine.banks.get("shared").entries == 0


def test_an_import_source_no_database_can_hold_is_a_user_error(engine: Engine) -> None:
    engine.banks.create("shared")
    with pytest.raises(UserError, match=r"import source 'in\\x00\.csv' contains a NUL"):
        engine.banks.import_csv("shared", io.StringIO(f"pdq,{PDQ_A}\n"), source="in\x00.csv")
    assert engine.banks.get("shared").entries == 0


def test_banks_are_listed_in_code_point_order(engine: Engine) -> None:
    db = engine.banks.db
    if db.dialect.name == "postgresql":  # as on a server whose collation is a language's
        with db.begin() as conn:
            conn.exec_driver_sql(
                'ALTER TABLE banks ALTER COLUMN name TYPE varchar(200) COLLATE "und-x-icu"'
            )
    for name in ("b", "a", "B", "x_", "A", "a-1", "a.1", "a_1", "Z9", "9z"):
        engine.banks.create(name)
    assert [b.name for b in engine.banks.all()] == [
        "9z",
        "A",
        "B",
        "Z9",
        "a",
        "a-1",
        "a.1",
        "a_1",
        "b",
        "x_",
    ]
