"""Property tests (hypothesis) over every parser of untrusted text: posts JSONL, bank CSV
import, policy TOML and the verify side of evidence bags.

The property each states: for any input the parser returns valid values or raises amber's
own error (``UserError`` or the subclass) naming where (file, line, row, key); never
another exception. Valid input round-trips where an export exists (bank CSV export ->
import gives the same entries). An example a run found is kept as an ``@example``.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import count
from pathlib import Path

import bagit
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from amber.banks import MAX_LABEL_LENGTH, ImportRowsError
from amber.engine import Engine, ScanResult
from amber.errors import PolicyError, PostError, UserError
from amber.evidence.bag import export_bag, verify_bag
from amber.policy import Policy, Verdict, parse_policy
from amber.posts import MAX_ID_LENGTH, Post, read_jsonl, read_stream
from amber.synthetic import photo

# Each test's examples cost milliseconds; the whole file stays within a few seconds.
FAST = settings(max_examples=150, deadline=None, derandomize=True)
# Examples that write to a database (both backends) or copy a bag cost more: fewer of them.
FIXTURE = settings(
    FAST, max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# -- posts JSONL ------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
POST_KEYS = ["id", "author", "created_at", "text", "poll", "media", "reply_to", "other"]
timestamps = st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()) | st.text(
    alphabet="0123456789-:TZz+. ", max_size=30
)
fields = {
    "id": st.text(max_size=600) | json_values,
    "created_at": timestamps | json_values,
    "poll": st.fixed_dictionaries(
        {},
        optional={
            "question": st.text(max_size=20) | json_values,
            "options": st.lists(st.text(max_size=10) | json_values, max_size=3) | json_values,
            "closes_at": timestamps | json_values,
        },
    )
    | json_values,
    "media": st.lists(
        st.fixed_dictionaries({"path": st.text(max_size=20) | st.just("x" * 5000) | json_values})
        | json_values,
        max_size=3,
    )
    | json_values,
}
post_objects = st.fixed_dictionaries(
    {}, optional={key: fields.get(key, st.text(max_size=20) | json_values) for key in POST_KEYS}
)


def _line(obj: object, raw: bool) -> bytes:
    return json.dumps(obj, ensure_ascii=raw).encode("utf-8", "surrogatepass")


jsonl_files = st.lists(
    st.one_of(
        st.builds(_line, post_objects, st.booleans()),
        st.builds(_line, json_values, st.booleans()),
        st.binary(max_size=40),
        st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ),
    max_size=6,
).map(lambda lines: b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")


def _check_post(post: Post) -> None:
    """What a parsed post promises: every value storable by both backends."""
    assert isinstance(post.id, str) and post.id.strip() and len(post.id) <= MAX_ID_LENGTH
    for value in (post.id, post.author, post.text, post.reply_to, post.raw):
        if value is not None:
            assert "\x00" not in value
            value.encode("utf-8")
    for value in (post.created_at, post.poll and post.poll.closes_at):
        if value is not None:
            assert value.tzinfo is UTC
    if post.poll is not None:
        assert post.poll.options and all(isinstance(o, str) for o in post.poll.options)
    for media in post.media:
        assert media.file.is_file()


@FAST
@given(data=jsonl_files)
# A media path longer than the file system allows: is_file() raised OSError (ENAMETOOLONG).
@example(data=b'{"id": "a", "media": [{"path": "' + b"x" * 5000 + b'"}]}\n')
def test_posts_jsonl_gives_posts_or_post_errors(tmp_path_factory, data: bytes) -> None:
    base = tmp_path_factory.getbasetemp()
    lines = data.split(b"\n")
    results = list(read_stream(io.BytesIO(data), source="in.jsonl", base=base))
    assert len(results) <= sum(1 for line in lines if line.strip())
    for result in results:
        if isinstance(result, PostError):
            assert result.source == "in.jsonl"
            assert result.line is not None and 1 <= result.line <= len(lines)
            assert str(result).startswith(f"in.jsonl line {result.line}")
        else:
            assert isinstance(result, Post)
            _check_post(result)
            assert result.raw.encode("utf-8") == lines[result.line - 1].rstrip(b"\r").removeprefix(
                b"\xef\xbb\xbf"
            )


# Text every backend stores: no NUL, no lone surrogate.
storable = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
valid_posts = st.fixed_dictionaries(
    {"id": st.text(storable, min_size=1, max_size=50).filter(str.strip)},
    optional={
        "author": st.text(storable, max_size=50),
        "text": st.text(storable),
        "created_at": st.datetimes(
            min_value=datetime(2, 1, 1), max_value=datetime(9998, 1, 1), timezones=st.timezones()
        ),
        "poll": st.fixed_dictionaries(
            {
                "question": st.text(storable),
                "options": st.lists(st.text(storable), min_size=1, max_size=4),
            }
        ),
    },
)


@FAST
@given(post=valid_posts)
def test_valid_posts_parse_to_their_values(tmp_path_factory, post: dict[str, object]) -> None:
    line = json.dumps({k: v.isoformat() if isinstance(v, datetime) else v for k, v in post.items()})
    (result,) = read_stream(
        io.BytesIO(line.encode() + b"\n"), source="in.jsonl", base=tmp_path_factory.getbasetemp()
    )
    assert isinstance(result, Post), result
    assert (result.id, result.author, result.text) == (
        post["id"],
        post.get("author"),
        post.get("text"),
    )
    if "created_at" in post:
        assert result.created_at == post["created_at"]
    if "poll" in post:
        assert result.poll is not None and list(result.poll.options) == post["poll"]["options"]
    assert result.raw == line


def test_deeply_nested_line_is_a_post_error(tmp_path: Path) -> None:
    data = b'{"id": "ok-1"}\n' + b"[" * 100_000 + b"]" * 100_000 + b'\n{"id": "ok-2"}\n'
    results = list(read_stream(io.BytesIO(data), source="in.jsonl", base=tmp_path))
    assert [type(r) for r in results] == [Post, PostError, Post]
    assert results[1].line == 2


# -- bank CSV import and export ------------------------------------------------------------

SIGNAL_VALUES = {
    "pdq": st.text("0123456789abcdef", min_size=64, max_size=64),
    "md5": st.text("0123456789abcdef", min_size=32, max_size=32),
    "sha256": st.text("0123456789abcdef", min_size=64, max_size=64),
}
# Labels as amber stores them: stripped, storable, at most the column's size; those that
# start like a spreadsheet formula come back whole too (the export escapes them).
labels = st.text(storable, max_size=MAX_LABEL_LENGTH).map(str.strip).filter(bool)
rows = st.one_of(*(st.tuples(st.just(k), v, labels) for k, v in SIGNAL_VALUES.items()))
cells = st.text(max_size=70) | st.sampled_from(
    ["pdq", "md5", "sha256", "photo_md5", "video_md5", "pdq_hash", "harm_poll", "signal_type"]
)
csv_texts = st.one_of(
    st.lists(st.lists(cells, max_size=5), max_size=6).map(
        lambda rs: "".join(
            ",".join(json.dumps(c) if i % 2 else c for i, c in enumerate(r)) + "\n" for r in rs
        )
    ),
    st.text(max_size=200),
)
_banks = count()


def _new_bank(engine: Engine) -> str:
    name = f"b{next(_banks)}"
    engine.banks.create(name)
    return name


@FIXTURE
@given(text=csv_texts)
# A field over the csv module's field size limit: csv.Error escaped import_csv.
@example(text='pdq,"' + "a" * 200_000 + '"\n')
def test_bank_import_stores_all_or_names_bad_rows(engine: Engine, text: str) -> None:
    name = _new_bank(engine)
    try:
        result = engine.banks.import_csv(name, io.StringIO(text, newline=""), source="in.csv")
    except ImportRowsError as exc:
        assert exc.rows and all(row >= 1 for row, _ in exc.rows)
        assert "in.csv row " in str(exc)
        assert engine.banks.get(name).entries == 0  # nothing was imported
        return
    except UserError as exc:
        assert "in.csv" in str(exc)
        assert engine.banks.get(name).entries == 0
        return
    assert engine.banks.get(name).entries == result.added


@FIXTURE
@given(entries=st.lists(rows, max_size=8, unique_by=lambda r: (r[0], r[1])))
# A label with a lone carriage return: the export left it unquoted, and the import split
# the row there ("expected signal_type,signal[,label]").
@example(entries=[("md5", "0" * 32, "a\rb")])
def test_bank_export_then_import_gives_the_same_entries(
    engine: Engine, entries: list[tuple[str, str, str]]
) -> None:
    first = _new_bank(engine)
    out = io.StringIO()
    # A header names the third column: a label that is a number is then not ambiguous.
    csv.writer(out, quoting=csv.QUOTE_ALL).writerows([("signal_type", "signal", "label")])
    csv.writer(out, quoting=csv.QUOTE_ALL).writerows(entries)
    engine.banks.import_csv(first, io.StringIO(out.getvalue(), newline=""), source="in.csv")
    exported = io.StringIO()
    assert engine.banks.export_csv(first, exported) == len(entries)
    # A cell a spreadsheet would run as a formula is written with a leading "'" (OWASP).
    header, *written = csv.reader(io.StringIO(exported.getvalue(), newline=""))
    assert header == ["signal_type", "signal", "label", "entry", "quality"]
    assert [row[:3] for row in written] == [
        [kind, value, "'" + label if label[:1] in ("=", "+", "-", "@", "\t", "\r", "'") else label]
        for kind, value, label in entries
    ]
    second = _new_bank(engine)
    again = engine.banks.import_csv(
        second, io.StringIO(exported.getvalue(), newline=""), source="out.csv"
    )
    assert again.added == len(entries)
    re_exported = io.StringIO()
    engine.banks.export_csv(second, re_exported)
    # Labels equal to the bank's own are written out as the bank's label; entry ids differ.
    again_rows = list(csv.reader(io.StringIO(re_exported.getvalue(), newline="")))[1:]
    assert [r[:2] + r[4:] for r in again_rows] == [r[:2] + r[4:] for r in written]
    assert [r[2] for r in again_rows] == [second if r[2] == first else r[2] for r in written]


# -- policy TOML ----------------------------------------------------------------------------

toml_keys = st.sampled_from(
    [
        "name", "when", "verdict", "actions", "signal", "signals", "banks", "labels",
        "max_distance", "values", "min_score", "max_score", "poll", "earlier_values",
        "related", "within_hours", "other",
    ]
)  # fmt: skip
toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.sampled_from(
        [
            "bank_match", "media_unreadable", "signal_score", "after_signal", "follows_signal",
            "remove", "review", "restrict", "allow", "bank", "harm_poll", "pdq", "reply",
            "escalate:threat_to_life", "escalate:x", "freeze_poll", "notify", "remove:x", "",
        ]
    ),
    st.text(max_size=8),
)  # fmt: skip
toml_values = st.one_of(toml_scalars, st.lists(toml_scalars, max_size=3))


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    assert isinstance(value, list)
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


def _toml_table(table: dict[str, object]) -> str:
    return "".join(f"{key} = {_toml_value(value)}\n" for key, value in table.items())


policy_texts = st.one_of(
    st.builds(
        lambda top, rules: (
            _toml_table(top) + "".join("[[rules]]\n" + _toml_table(rule) for rule in rules)
        ),
        st.dictionaries(st.sampled_from(["name", "other"]), toml_scalars, max_size=2),
        st.lists(st.dictionaries(toml_keys, toml_values, max_size=8), max_size=3),
    ),
    st.text(max_size=100),
    st.text(alphabet="[]{}=\"'.,ab \n", max_size=100),
)


def _check_policy(policy: Policy) -> None:
    assert policy.rules and len({r.name for r in policy.rules}) == len(policy.rules)
    assert 0 <= policy.pdq_min_quality <= 100
    for rule in policy.rules:
        assert rule.verdict is None or isinstance(rule.verdict, Verdict)
        assert all(a in policy.configured_actions for a in rule.actions)
        for key in ("max_distance", "min_score", "max_score"):
            value = getattr(rule.condition, key, None)
            assert value is None or (not isinstance(value, bool) and value >= 0), (key, value)
        hours = getattr(getattr(rule.condition, "context", None), "within_hours", None)
        assert hours is None or hours > 0, hours


@FAST
@given(text=policy_texts)
# A TOML file nested deeper than Python's recursion limit: RecursionError escaped.
@example(text="a = " + "[" * 5000 + "]" * 5000)
# `max_distance = false` was taken as 0 (a bool is an int to Python).
@example(text='[[rules]]\nname = "r"\nwhen = "bank_match"\nmax_distance = false\n')
# `within_hours = nan` passed the "> 0" check (every comparison with NaN is false).
@example(text='[[rules]]\nname = "r"\nwhen = "follows_signal"\nsignal = "s"\nwithin_hours = nan\n')
def test_policy_parses_or_names_the_key(text: str) -> None:
    try:
        policy = parse_policy(text, source="p.toml")
    except PolicyError as exc:
        assert exc.path == "p.toml" and str(exc).startswith("p.toml")
        return
    _check_policy(policy)


# -- evidence bags (verify side) ------------------------------------------------------------


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One real bag of a post amber removed, exported from a real vault."""
    from amber.engine import open_engine

    root = tmp_path_factory.mktemp("bag")
    media = root / "p.png"
    photo(7, 64, 48).save(media)
    posts = root / "posts.jsonl"
    posts.write_text(json.dumps({"id": "p1", "media": [{"path": "p.png"}]}) + "\n")
    with open_engine(db=root / "a.db", vault=root / "vault") as engine:
        engine.banks.create("known")
        engine.banks.add_files("known", [media])
        (result,) = engine.scan(read_jsonl(posts), workers=1)
        assert isinstance(result, ScanResult) and result.outcome.verdict is Verdict.remove
        yield export_bag(engine.open_vault(), "p1", root / "bag")


JSON_FILES = ["proof.json", "custody.jsonl", "post.json", "decision.json", "collection.json"]
replacements = st.one_of(
    st.binary(max_size=60),
    st.builds(lambda v: json.dumps(v).encode(), json_values),
    st.builds(
        lambda v: (json.dumps(v) + "\n").encode(),
        st.fixed_dictionaries(
            {"event": st.just("preserved")},
            optional={"post_id": json_values, "objects": json_values},
        ),
    ),
)


def _mutate_json(value: object, path: list[int], new: object) -> object:
    """``value`` with the node reached by ``path`` (indices into sorted keys) replaced."""
    if not path or not isinstance(value, dict | list) or not value:
        return new
    keys = sorted(value) if isinstance(value, dict) else list(range(len(value)))
    key = keys[path[0] % len(keys)]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[key] = _mutate_json(value[key], path[1:], new)  # type: ignore[index]
    return copy


@settings(FIXTURE, max_examples=60)
@given(
    name=st.sampled_from([*JSON_FILES, "checkpoint.txt", "checkpoint.vkey", "media/extra"]),
    whole=replacements,
    path=st.lists(st.integers(0, 20), max_size=4),
    node=json_values,
    edit=st.booleans(),
)
# proof.json `null`: verify_bag raised AttributeError ('NoneType' has no attribute 'get').
@example(name="proof.json", whole=b"null", path=[], node=None, edit=False)
# A preserved record naming a media item that is not an object: TypeError escaped.
@example(
    name="custody.jsonl",
    whole=b'{"event": "preserved", "objects": {"media": [1]}}\n',
    path=[],
    node=None,
    edit=False,
)
def test_verify_bag_reports_damage_and_never_raises(
    bag: Path, tmp_path: Path, name: str, whole: bytes, path: list[int], node: object, edit: bool
) -> None:
    copy = tmp_path / "bag"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(bag, copy)
    target = copy / "data" / name
    if edit and name.endswith(".json"):  # change one node deep inside a valid file
        original = json.loads(target.read_text(encoding="utf-8"))
        changed = _mutate_json(original, path, node)
        target.write_text(json.dumps(changed), encoding="utf-8")
        damaged = changed != original
    elif edit and name == "custody.jsonl":  # change one node of one record
        lines = target.read_bytes().split(b"\n")[:-1]
        i = path[0] % len(lines) if path else 0
        record = json.loads(lines[i])
        lines[i] = json.dumps(_mutate_json(record, path[1:], node)).encode()
        target.write_bytes(b"\n".join(lines) + b"\n")
        damaged = lines[i] != bag.joinpath("data", name).read_bytes().split(b"\n")[i]
    else:
        target.write_bytes(whole)
        damaged = name == "media/extra" or whole != bag.joinpath("data", name).read_bytes()
    # Recompute the (unsigned) manifests, as someone planting a change would: fixity passes,
    # and only amber's own checks stand between the change and an "ok".
    bagit.Bag(str(copy)).save(manifests=True)
    report = verify_bag(copy)
    assert all(isinstance(p, str) and p for p in report.problems)
    # Every byte of these is bound by a signature (the checkpoint, the custody records'
    # leaves, the digests those records name); proof.json also holds descriptive fields.
    if damaged and name not in ("media/extra", "proof.json"):
        assert not report.ok, (name, report)


def test_the_bag_itself_verifies(bag: Path) -> None:
    report = verify_bag(bag)
    assert report.ok, report.problems
    assert report.post_id == "p1" and report.records >= 1
    assert base64.b64decode(json.loads((bag / "data/proof.json").read_text())["root"])
