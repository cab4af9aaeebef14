"""Bank file formats both ways with the real python-threatexchange: what pytx writes amber
imports, what amber exports pytx loads (its local file exchange) and HMA takes (its
``/signal`` body, checked with pytx's own types as HMA checks it); rows refused by number,
a file's hashes kept as one entry, duplicates, ``--sync``, the CLI and the API."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from threatexchange.cli.main import inner_main
from threatexchange.exchanges.impl.file_api import (
    FileCollaborationConfig,
    LocalFileSignalExchangeAPI,
)
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal as PytxPdq
from threatexchange.signal_type.sha256 import VideoSHA256Signal
from typer.testing import CliRunner

from amber.bank_formats import default_formats, detect
from amber.banks import ImportRowsError
from amber.cli import app
from amber.engine import Engine
from amber.errors import UserError
from amber.signals import SignalValue

PYTX_TYPES = {t.get_name(): t for t in (PytxPdq, VideoMD5Signal, VideoSHA256Signal)}
PDQ = [
    "2cd21f4aff2bb1bb119bcf916c84c06e466d6f653505c454b7d43bce980d3113",
    "1d134a77d6ea66519ca39d386325b64a4ad92daf9346cb2db692924931267cd6",
    "b557c4a6425bcda7944a32b8d645c92674ad62b41d9aea694765a8cc6732f90f",
]
MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def pytx(state: Path, *args: str) -> str:
    """Run python-threatexchange's own CLI (in this process); what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        inner_main(list(args), state_dir=state)
    return out.getvalue()


def pytx_dataset(tmp_path: Path, lines: str, *dataset_args: str) -> str:
    """What ``threatexchange dataset`` prints after fetching ``lines`` through its local
    file exchange."""
    source = tmp_path / "pytx-source.txt"
    source.write_text(lines, encoding="utf-8")
    state = tmp_path / "pytx-state"
    pytx(
        state,
        "config",
        "collab",
        "edit",
        "local_file",
        "src",
        "--create",
        "--filename",
        str(source),
    )
    pytx(state, "fetch")
    return pytx(state, "dataset", "-P", *dataset_args)


def pytx_load(path: Path, signal_type: str | None = None) -> set[tuple[str, str]]:
    """The signals python-threatexchange's local file exchange loads from ``path``."""
    collab = FileCollaborationConfig(
        name="amber", api="local_file", enabled=True, filename=str(path), signal_type=signal_type
    )
    api = LocalFileSignalExchangeAPI.for_collab(collab)
    fetched: dict[tuple[str, str], object] = {}
    for delta in api.fetch_iter(list(PYTX_TYPES.values()), None):
        api.naive_fetch_merge(fetched, delta.updates)  # type: ignore[arg-type]
    loaded = api.naive_convert_to_signal_type(list(PYTX_TYPES.values()), collab, fetched)  # type: ignore[arg-type]
    return {(t.get_name(), s) for t, signals in loaded.items() for s in signals}


def values(engine: Engine, bank: str, *, shared: bool = False) -> list[set[tuple[str, str]]]:
    """Each entry's own values, in entry order; ``shared``: only those of types other
    tools read (not amber's own local features, which their formats leave out)."""
    return [
        {(v.signal_type, v.value) for v in e.values if not shared or v.signal_type != "orb"}
        for e in engine.banks.entries(bank)
    ]


def export(engine: Engine, bank: str, fmt: str, **options: str) -> str:
    out = io.StringIO()
    engine.banks.export(bank, out, format=fmt, **options)
    return out.getvalue()


@pytest.fixture
def photo_bank(engine: Engine, photo_file: Callable[..., Path]) -> str:
    """A bank of two photos, each an entry of pdq, md5 and sha256."""
    engine.banks.create("photos", label="execution")
    engine.banks.add_files("photos", [photo_file(1), photo_file(2)])
    return "photos"


# -- python-threatexchange writes, amber imports -----------------------------------------


def test_pytx_dataset_csv_imports(engine: Engine, tmp_path: Path) -> None:
    written = pytx_dataset(tmp_path, f"pdq {PDQ[0]}\nvideo_md5 {MD5}\n", "--csv")
    assert written.splitlines()[0] == "signal_type,signal_str,collab,category,tags"
    engine.banks.create("gifct")

    result = engine.banks.import_text("gifct", io.StringIO(written), source="pytx.csv")

    assert (result.added, result.duplicates) == (2, 0)
    assert sorted(map(sorted, values(engine, "gifct"))) == [[("md5", MD5)], [("pdq", PDQ[0])]]


def test_pytx_type_lines_and_bare_hashes_import(engine: Engine, tmp_path: Path) -> None:
    lines = pytx_dataset(tmp_path, f"pdq {PDQ[0]}\npdq {PDQ[1]}\nvideo_md5 {MD5}\n", "-S")
    bare = pytx(tmp_path / "pytx-state", "dataset", "-P", "-S", "-s", "pdq")
    assert f"pdq {PDQ[0]}" in lines.splitlines() and PDQ[1] in bare.splitlines()
    engine.banks.create("lines")
    engine.banks.create("bare")

    assert engine.banks.import_text("lines", io.StringIO(lines), source="l").added == 3
    assert (
        engine.banks.import_text("bare", io.StringIO(bare), source="b", signal_type="pdq").added
        == 2
    )
    assert {v for e in values(engine, "lines") for v in e} == {
        ("pdq", PDQ[0]),
        ("pdq", PDQ[1]),
        ("md5", MD5),
    }
    assert {v for e in values(engine, "bare") for v in e} == {("pdq", PDQ[0]), ("pdq", PDQ[1])}


# -- amber exports, python-threatexchange and HMA load ------------------------------------


def test_lines_export_loads_in_pytx_local_file_exchange(
    engine: Engine, photo_bank: str, tmp_path: Path
) -> None:
    path = tmp_path / "photos.txt"
    path.write_text(export(engine, photo_bank, "lines"), encoding="utf-8")

    loaded = pytx_load(path)

    names = {"md5": "video_md5", "sha256": "video_sha256", "pdq": "pdq"}
    expected = {(names[t], v) for e in values(engine, photo_bank, shared=True) for t, v in e}
    assert len(expected) == 6 and loaded == expected
    # pytx's own command line sees the same: configure, fetch, print
    state = tmp_path / "state"
    pytx(state, "config", "collab", "edit", "local_file", "a", "--create", "--filename", str(path))
    pytx(state, "fetch")
    printed = set(pytx(state, "dataset", "-P", "-S").splitlines())
    assert printed == {f"{t} {v}" for t, v in expected}


def test_hashes_export_loads_in_pytx_with_its_signal_type(
    engine: Engine, photo_bank: str, tmp_path: Path
) -> None:
    path = tmp_path / "pdq.txt"
    path.write_text(export(engine, photo_bank, "hashes", signal_type="pdq"), encoding="utf-8")

    assert pytx_load(path, signal_type="pdq") == {
        ("pdq", v) for e in values(engine, photo_bank) for t, v in e if t == "pdq"
    }
    with pytest.raises(UserError, match="give --signal-type"):
        export(engine, photo_bank, "hashes")


def test_pytx_csv_export_is_pytx_dataset_csv(
    engine: Engine, photo_bank: str, tmp_path: Path
) -> None:
    ours = list(csv.DictReader(io.StringIO(export(engine, photo_bank, "pytx-csv"))))
    theirs = pytx_dataset(tmp_path, f"pdq {PDQ[0]}\n", "--csv").splitlines()[0]

    assert list(ours[0]) == theirs.split(",")
    for row in ours:  # every signal is valid to pytx's type of that name
        assert PYTX_TYPES[row["signal_type"]].validate_signal_str(row["signal_str"])
        assert (row["collab"], row["category"], row["tags"]) == (
            "photos",
            "POSITIVE_CLASS",
            "execution",
        )
    engine.banks.create("back")
    assert (
        engine.banks.import_text(
            "back", io.StringIO(export(engine, photo_bank, "pytx-csv")), source="x"
        ).added
        == 6
    )


def test_hma_json_export_is_hma_signal_bodies(engine: Engine, photo_bank: str) -> None:
    items = json.loads(export(engine, photo_bank, "hma-json"))

    assert [i["id"] for i in items] == [e.id for e in engine.banks.entries(photo_bank)]
    for item in items:  # HMA's /c/bank/<bank>/signal checks each as pytx's type does
        assert set(item["signals"]) == {"pdq", "video_md5", "video_sha256"}
        for name, signal in item["signals"].items():
            assert PYTX_TYPES[name].validate_signal_str(signal) == signal
    engine.banks.create("copy")
    again = engine.banks.import_text("copy", io.StringIO(json.dumps(items)), source="hma.json")
    shared = values(engine, photo_bank, shared=True)
    assert again.added == 2 and values(engine, "copy") == shared


def test_hma_json_reads_signal_bodies_content_and_json_lines(engine: Engine) -> None:
    engine.banks.create("hma")
    body = {"pdq": PDQ[0], "video_md5": MD5}
    content = {"id": 7, "signals": {"pdq": PDQ[1]}, "metadata": {"content_id": "post-9"}}
    text = json.dumps(body) + "\n" + json.dumps(content) + "\n"

    assert engine.banks.import_text("hma", io.StringIO(text), source="hma.jsonl").added == 2

    first, second = engine.banks.entries("hma")
    assert {(v.signal_type, v.value) for v in first.values} == {("pdq", PDQ[0]), ("md5", MD5)}
    assert second.content_id == "post-9"


# -- amber's own CSV: one entry per file ---------------------------------------------------


def test_amber_csv_keeps_a_file_s_hashes_one_entry(engine: Engine, photo_bank: str) -> None:
    text = export(engine, photo_bank, "amber-csv")
    assert text.splitlines()[0] == "signal_type,signal,label,entry,quality"
    engine.banks.create("copy")

    result = engine.banks.import_text("copy", io.StringIO(text), source="out.csv")

    assert result.added == 2  # two photos, not six rows
    assert values(engine, "copy") == values(engine, photo_bank)
    qualities = {v.quality for e in engine.banks.entries("copy") for v in e.values}
    assert {q for q in qualities if q is not None}  # PDQ's quality came along
    again = engine.banks.import_text("copy", io.StringIO(text), source="out.csv")
    assert (again.added, again.duplicates) == (0, 2)


def test_rows_of_an_entry_must_be_together(engine: Engine) -> None:
    engine.banks.create("b")
    text = f"signal_type,signal,entry\npdq,{PDQ[0]},a\npdq,{PDQ[1]},b\nmd5,{MD5},a\n"
    with pytest.raises(ImportRowsError) as caught:
        engine.banks.import_text("b", io.StringIO(text), source="in.csv")
    assert [row for row, _ in caught.value.rows] == [4]
    assert engine.banks.get("b").entries == 0


# -- ambiguity and bad rows, by number ------------------------------------------------------


def test_a_number_after_a_hash_is_refused_by_row(engine: Engine) -> None:
    engine.banks.create("b")
    text = f"{PDQ[0]}\n{PDQ[1]},87\n{PDQ[2]}, 90\n"
    with pytest.raises(ImportRowsError) as caught:
        engine.banks.import_text("b", io.StringIO(text), source="list.txt", signal_type="pdq")
    assert [row for row, _ in caught.value.rows] == [2, 3]
    assert "a number (87) follows the hash" in str(caught.value)
    with pytest.raises(UserError, match="give --signal-type"):
        engine.banks.import_text("b", io.StringIO(text), source="list.txt")
    assert engine.banks.get("b").entries == 0


def test_a_numeric_label_needs_a_header_naming_it(engine: Engine) -> None:
    engine.banks.create("b")
    with pytest.raises(ImportRowsError, match=r"row 2: the third column is a number \(87\)"):
        engine.banks.import_csv("b", io.StringIO(f"pdq,{PDQ[0]},x\npdq,{PDQ[1]},87\n"), source="c")
    assert engine.banks.get("b").entries == 0
    named = f"signal_type,signal,quality\npdq,{PDQ[1]},87\n"
    assert engine.banks.import_csv("b", io.StringIO(named), source="c").added == 1
    [entry] = engine.banks.entries("b")
    assert (entry.label, entry.values[0].quality) == (None, 87)


def test_pytx_negative_class_rows_are_skipped(engine: Engine) -> None:
    engine.banks.create("b")
    text = (
        "signal_type,signal_str,collab,category,tags\n"
        f"pdq,{PDQ[0]},c,POSITIVE_CLASS,terror violence\npdq,{PDQ[1]},c,NEGATIVE_CLASS,\n"
    )
    result = engine.banks.import_text("b", io.StringIO(text), source="p.csv")
    assert (result.added, result.skipped) == (1, 1)
    assert engine.banks.entries("b")[0].label == "terror violence"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (f"signal_type,signal,label,entry,quality\npdq,{PDQ[0]},x,1,\n", "amber-csv"),
        (f"pdq,{PDQ[0]}\n", "amber-csv"),
        (
            f"signal_type,signal_str,collab,category,tags\npdq,{PDQ[0]},c,POSITIVE_CLASS,\n",
            "pytx-csv",
        ),
        (f"pdq {PDQ[0]}\nvideo_md5 {MD5}\n", "lines"),
        (f'[{{"id": 1, "signals": {{"pdq": "{PDQ[0]}"}}}}]', "hma-json"),
        (f"0,100,{PDQ[0]},0.000\n", "vpdq"),
    ],
)
def test_formats_are_told_from_their_first_lines(head: str, expected: str) -> None:
    assert detect(head, signal_type=None, known_types=["pdq", "md5", "sha256", "vpdq"]) == expected


def test_every_format_the_cli_names_is_registered() -> None:
    from amber.cli.banks import ExportFormat, ImportFormat

    names = set(default_formats().names())
    assert {f.value for f in ImportFormat} == names | {"auto", "vpdq"}
    assert {f.value for f in ExportFormat} == names | {"csv", "vpdq"}


# -- sync -----------------------------------------------------------------------------------


def test_sync_makes_the_bank_equal_to_the_file(engine: Engine) -> None:
    engine.banks.create("list")
    first = "".join(f"pdq {h}\n" for h in PDQ[:2])
    engine.banks.import_text("list", io.StringIO(first), source="v1.txt")
    changed = f"pdq {PDQ[1]}\npdq {PDQ[2]}\nvideo_md5 {MD5}\n"

    result = engine.banks.import_text("list", io.StringIO(changed), source="v2.txt", sync=True)

    assert (result.added, result.duplicates, result.deleted) == (2, 1, 1)
    assert sorted(v for e in values(engine, "list") for v in e) == sorted(
        [("pdq", PDQ[1]), ("pdq", PDQ[2]), ("md5", MD5)]
    )
    gone = engine.matcher.match([[SignalValue("pdq", PDQ[0], 100)]])
    kept = engine.matcher.match([[SignalValue("pdq", PDQ[2], 100)]])
    assert gone == [] and [m.distance for m in kept] == [0]
    audit = engine.banks.audit("list")[-1]
    assert audit.action == "import" and audit.detail["deleted"] == 1


def test_an_import_builds_the_pdq_index_once_and_matches(engine: Engine) -> None:
    engine.banks.create("big")
    rng = random.Random(7)
    hashes = [f"{rng.getrandbits(256):064x}" for _ in range(3000)]
    text = "".join(f"{h}\n" for h in hashes)
    result = engine.banks.import_text("big", io.StringIO(text), source="h", signal_type="pdq")
    assert result.added == 3000
    assert len(engine.matcher.indexes["pdq"]) == 3000
    [match] = engine.matcher.match([[SignalValue("pdq", hashes[1234], 100)]])
    assert match.bank == "big" and match.distance == 0
    assert [e.action for e in engine.banks.audit("big")] == ["create", "import"]


# -- the faces ------------------------------------------------------------------------------


def test_cli_imports_and_exports_each_format(database: str, tmp_path: Path) -> None:
    runner = CliRunner()

    def amber(*args: object) -> str:
        result = runner.invoke(app, [*map(str, args), "--db", database])
        assert result.exit_code == 0, result.output
        return result.stdout

    amber("bank", "create", "b")
    hashes = tmp_path / "h.txt"
    hashes.write_text("".join(f"{h}\n" for h in PDQ))
    amber("bank", "import", "b", hashes, "--signal-type", "pdq")
    assert amber("bank", "export", "b", "--format", "lines").splitlines() == [
        f"pdq {h}" for h in PDQ
    ]
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{PDQ[0]},87\n")
    failed = runner.invoke(
        app, ["bank", "import", "b", str(bad), "--signal-type", "pdq", "--db", database]
    )
    assert failed.exit_code == 2 and "row 1: a number (87)" in failed.output
    assert "Traceback" not in failed.output
    synced = tmp_path / "one.txt"
    synced.write_text(f"pdq {PDQ[0]}\n")
    amber("bank", "import", "b", synced, "--sync")
    assert amber("bank", "export", "b", "--format", "hashes", "--signal-type", "pdq").split() == [
        PDQ[0]
    ]


def test_api_import_and_export_take_a_format(engine: Engine) -> None:
    from fastapi.testclient import TestClient

    from amber.api.app import create_app
    from amber.tokens import parse_scopes

    token = engine.tokens.create("admin", parse_scopes("admin"))[1]
    with TestClient(create_app(engine, sweep_every=None)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        client.post("/v1/banks", json={"name": "b"}, headers=headers)
        body = "".join(f"{h}\n" for h in PDQ).encode()
        done = client.post(
            "/v1/banks/b/import?format=hashes&signal_type=pdq", content=body, headers=headers
        )
        assert done.json() == {"added": 3, "duplicates": 0, "skipped": 0, "deleted": 0}
        lines = client.get("/v1/banks/b/export?format=lines", headers=headers)
        assert lines.text.splitlines() == [f"pdq {h}" for h in PDQ]
        hma = client.get("/v1/banks/b/export?format=hma-json", headers=headers)
        assert hma.headers["content-type"].startswith("application/json")
        bad = client.post("/v1/banks/b/import?format=nope", content=body, headers=headers)
        assert bad.status_code in (400, 422)
