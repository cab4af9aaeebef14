"""The harm-poll detector in every language amber has a lexicon for, and beyond.

Each language's examples (``tests/data/harm_poll/examples/<code>.jsonl``) were written for
these tests by the lexicon's author; the evaluation sets in ``benchmarks/data`` are never
read here. A harm example must reach at least ``review`` under the default policy on its
words alone; a hard negative or an everyday post must be allowed.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from amber.errors import UserError
from amber.harm_poll import assess
from amber.harm_poll.lexicon import Coverage, check_file, load, parse
from amber.harm_poll.matcher import build_index, find_matches
from amber.harm_poll.normalize import normalise, tokenize
from amber.harm_poll.structure import read_post
from amber.policy import Verdict, load_policy
from amber.signals.harm_poll import explain_text
from conftest import CliResult, run_cli

EXAMPLES = Path(__file__).parent / "data" / "harm_poll" / "examples"
POLICY = load_policy()


def _rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for file in sorted(EXAMPLES.glob("*.jsonl")):
        for line in file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return rows


ROWS = _rows()
FULL = sorted(lex.language for lex in load() if lex.coverage is Coverage.full)

#: Examples the detector is known to miss or to flag, with why (docs/harm-poll.md, limits).
KNOWN_GAPS: dict[str, str] = {}


def _verdict(row: dict[str, Any]) -> tuple[Verdict, str]:
    poll = row.get("poll") or {}
    result, outcome = explain_text(
        row.get("text") or "",
        question=poll.get("question"),
        options=poll.get("options") or (),
        policy=POLICY,
    )
    return outcome.verdict, result.explain()


def _params(*labels: str) -> list[Any]:
    out = []
    for row in ROWS:
        if row["label"] not in labels:
            continue
        gap = KNOWN_GAPS.get(row["id"])
        marks = [pytest.mark.xfail(reason=gap, strict=True)] if gap else []
        out.append(pytest.param(row, id=row["id"], marks=marks))
    return out


def test_every_full_lexicon_has_examples_of_each_kind() -> None:
    counts = Counter((r["language"], r["label"]) for r in ROWS)
    ids = [r["id"] for r in ROWS]
    assert len(ids) == len(set(ids))
    assert len(FULL) >= 30
    for language in FULL:
        assert counts[(language, "harm")] >= 8, language
        assert counts[(language, "negative")] >= 6, language
        assert counts[(language, "everyday")] >= 4, language


@pytest.mark.parametrize("row", _params("harm"))
def test_harm_example_reaches_review(row: dict[str, Any]) -> None:
    verdict, why = _verdict(row)
    assert verdict.rank >= Verdict.review.rank, why


@pytest.mark.parametrize("row", _params("negative", "everyday"))
def test_negative_and_everyday_examples_are_allowed(row: dict[str, Any]) -> None:
    verdict, why = _verdict(row)
    assert verdict is Verdict.allow, why


@pytest.mark.parametrize("language", FULL)
def test_language_is_identified_on_its_harm_examples(language: str) -> None:
    rows = [r for r in ROWS if r["language"] == language and r["label"] == "harm"]
    found = Counter(assess(r.get("text") or "", **_poll(r)).language for r in rows if r.get("text"))
    assert found[language] >= 0.6 * sum(found.values()), found


def _poll(row: dict[str, Any]) -> dict[str, Any]:
    poll = row.get("poll") or {}
    return {"question": poll.get("question"), "options": poll.get("options") or ()}


# --- beyond the lexicons: structure, emoji, no-lexicon languages --------------------


@pytest.mark.parametrize(
    ("text", "question", "options"),
    [
        # a two-option poll over a person's fate, in words amber has no lexicon for
        ("", "Qaraar kiya? ⏳ 1h", ["💀", "🕊️"]),
        # reaction votes bound to fates by emoji alone
        ("🔪 = ☠️ , 🕊️ = 🆓 ⏳ 60", None, ()),
    ],
)
def test_structure_and_emoji_carry_a_vote_in_any_language(
    text: str, question: str | None, options: list[str]
) -> None:
    result, outcome = explain_text(text, question=question, options=options, policy=POLICY)
    assert outcome.verdict.rank >= Verdict.review.rank, result.explain()


def test_a_language_without_a_lexicon_is_named_as_such() -> None:
    # Icelandic: no lexicon of any coverage; fastText still names it
    result = assess("Hvað eigum við að borða í kvöld? Pítsa eða fiskur?")
    assert result.guess is not None and result.guess.code == "is"
    assert result.guess.coverage is None
    assert "no lexicon" in result.guess.describe()


def test_the_lexicons_name_languages_fasttext_does_not_know() -> None:
    # Hausa is not among fastText's 176 languages; its stopwords and cue words are
    result = assess("Mu kashe shi ko mu sake shi? Ku zaɓa cikin awa ɗaya.")
    assert result.guess is not None and result.guess.code == "ha", result.explain()
    assert result.guess.by == "lexicon"


# --- lexicon files: schema, syntax, inflections -------------------------------------

GOOD = """
language = "xx"
name = "Test"
coverage = "core"
scripts = ["Latn"]
stemmer = "spanish"

[provenance]
written_by = "tests"
sources = "tests"
reviewers = [{ name = "A. Reviewer", date = "2026-12-01", native = true }]
updated = "2026-12-06"

[macros]
END = "{o|a}"

[words]
stopwords = ["el", "la"]

[entries]
harm_act = ["matar+", "fusil$END"]
spare_act = ["soltar+"]
"""


def test_inflections_come_from_the_snowball_stemmer() -> None:
    index = build_index([parse(GOOD, source="xx.toml")])
    for text in ("matamos", "mataron", "matarlo", "Matará", "soltamos"):
        view = read_post(text, None, ())
        found = find_matches(index, view.content, view.segments, stem_languages={"xx"})
        assert found, text
    view = read_post("matemática", None, ())
    assert not find_matches(index, view.content, view.segments, stem_languages={"xx"})


def test_macros_expand() -> None:
    lexicon = parse(GOOD, source="xx.toml")
    assert "fusil{o|a}" in lexicon.entries[next(iter(lexicon.entries))] or any(
        "fusil{o|a}" in e for v in lexicon.entries.values() for e in v
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('coverage = "core"', 'coverage = "most"'), "key coverage"),
        (("harm_act =", "kill_act ="), "key entries.kill_act"),
        (("fusil$END", "fusil$NOPE"), "unknown macro $NOPE"),
        (('stemmer = "spanish"', ""), "no stemmer is set"),
        (('date = "2026-12-01"', 'date = "yesterday"'), "reviewers.0.date"),
        (("[words]", "[words"), "invalid TOML"),
    ],
)
def test_a_bad_lexicon_file_names_the_key(edit: tuple[str, str], message: str) -> None:
    with pytest.raises(UserError, match=message.replace("$", r"\$")):
        parse(GOOD.replace(*edit), source="xx.toml")


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        ("xx.toml", ("fusil$END", "fusil{o|a"), "unbalanced braces"),
        ("yy.toml", ("", ""), "must be named xx.toml"),
    ],
)
def test_check_file_refuses_what_would_break_amber(
    tmp_path: Path, name: str, edit: tuple[str, str], message: str
) -> None:
    path = tmp_path / name
    path.write_text(GOOD.replace(*edit) if edit[0] else GOOD, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        check_file(path)


def test_every_packaged_lexicon_is_valid_and_has_provenance() -> None:
    folder = Path(__file__).parents[1] / "src" / "amber" / "harm_poll" / "lexicon"
    for file in sorted(folder.glob("*.toml")):
        lexicon = check_file(file)
        assert lexicon.provenance["written_by"], file
        assert file.stem in (lexicon.language, "emoji"), file


def test_languages_command_checks_a_reviewers_file(tmp_path: Path) -> None:
    good = tmp_path / "xx.toml"
    good.write_text(GOOD, encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("harm_act =", "kill_act ="), encoding="utf-8")
    ok = _amber("harm-poll", "languages", "--check", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "A. Reviewer" in ok.stdout and "valid" in ok.stderr
    failed = _amber("harm-poll", "languages", "--check", str(bad))
    assert failed.returncode == 2
    assert "bad.toml" in failed.stderr and "key entries" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_explain_command_shows_language_cues_steps_and_verdict() -> None:
    done = _amber("harm-poll", "explain", "Kill him or let him go? You have one hour to vote")
    assert done.returncode == 0, done.stderr
    for part in ("language: en (lexicon: full", "choice_pair", "harm_act", "vote = bias"):
        assert part in done.stdout
    assert "-> restrict (rules: harm-vote)" in done.stdout
    data = json.loads(
        _amber(
            "harm-poll",
            "explain",
            "",
            "--question",
            "Qaraar?",
            "--option",
            "💀",
            "--option",
            "🕊️",
            "--format",
            "json",
        ).stdout
    )
    assert data["verdict"] in ("review", "restrict") and data["rules"]
    assert {c["name"] for c in data["cues"]} >= {"choice_pair", "poll_structure"}


def _amber(*args: str) -> CliResult:
    return run_cli(*args)


# --- scripts written without spaces -------------------------------------------------


def test_myanmar_is_split_into_syllables_and_thai_into_characters() -> None:
    words = [t.text for t in tokenize(normalise("ဒီကောင့်ကို သတ်မလား"))]
    assert words == ["ဒီ", "ကောင့်", "ကို", "သတ်", "မ", "လား"]
    assert [t.text for t in tokenize(normalise("杀了他"))] == ["杀", "了", "他"]


def test_indic_vowel_signs_stay_in_their_word() -> None:
    assert [t.text for t in tokenize(normalise("इसे मार दो"))] == ["इसे", "मार", "दो"]
