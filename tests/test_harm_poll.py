"""The harm-poll detector: labelled posts in ten languages, normalisation, explanations."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from amber.errors import InternalError, UserError
from amber.harm_poll import DEFAULT_THRESHOLD, Assessment, Kind, assess
from amber.harm_poll.detector import WEIGHTS
from amber.harm_poll.lexicon import CueClass, Effect, lexicon_files, load
from amber.harm_poll.matcher import compile_entry, stemmer
from amber.harm_poll.normalize import normal_form, normalise, tokenize

DATA = Path(__file__).parent / "data" / "harm_poll" / "labelled.jsonl"
LANGUAGES = ("en", "ar", "fa", "ckb", "tr", "fr", "es", "ru", "ur", "de")


def _load() -> list[dict[str, Any]]:
    with DATA.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


ROWS = _load()


def _assess(row: dict[str, Any]) -> Assessment:
    poll = row["poll"] or {}
    return assess(row["text"], question=poll.get("question"), options=poll.get("options") or ())


# --- the labelled set -------------------------------------------------------------


def test_labelled_set_covers_every_language_with_positives_and_hard_negatives() -> None:
    ids = [r["id"] for r in ROWS]
    assert len(ids) == len(set(ids))
    assert len(ROWS) >= 200
    counts = Counter((r["language"], r["label"] != "negative") for r in ROWS)
    for language in LANGUAGES:
        assert counts[(language, True)] >= 8, language
        assert counts[(language, False)] >= 8, language
    for r in ROWS:
        assert r["label"] in ("vote", "announcement", "negative")
        assert r["split"] in ("dev", "test", "holdout", "blind", "dev2")
        assert r["text"] or r["poll"], r["id"]
        assert r["category"]


#: Labelled posts the detector is known to miss, with the reason (docs/harm-poll.md, limits).
KNOWN_GAPS = {
    "en-b-p03": "no harm word at all: 'does the traitor keep his head?'",
    "en-b-p05": "asks nobody in so many words ('only if this gets 10k likes'): review tier only",
}


def _rows(*, positive: bool) -> list[Any]:
    out: list[Any] = []
    for r in ROWS:
        if (r["label"] != "negative") != positive:
            continue
        gap = KNOWN_GAPS.get(r["id"])
        marks = [pytest.mark.xfail(reason=gap, strict=True)] if gap else []
        out.append(pytest.param(r, id=r["id"], marks=marks))
    return out


@pytest.mark.parametrize("row", _rows(positive=True))
def test_positive_fires_with_its_kind(row: dict[str, Any]) -> None:
    result = _assess(row)
    assert result.fired, result.explain()
    assert result.kind == Kind(row["label"]), result.explain()


@pytest.mark.parametrize("row", _rows(positive=False))
def test_hard_negative_does_not_fire(row: dict[str, Any]) -> None:
    result = _assess(row)
    assert not result.fired, result.explain()
    assert result.kind is None


def _rates(rows: list[dict[str, Any]]) -> tuple[float, float]:
    tp = fp = fn = 0
    for row in rows:
        gold, fired = row["label"] != "negative", _assess(row).fired
        tp += gold and fired
        fp += fired and not gold
        fn += gold and not fired
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall


@pytest.mark.parametrize("split", ["dev", "test", "holdout", "blind", "dev2"])
def test_precision_and_recall_per_split(split: str) -> None:
    precision, recall = _rates([r for r in ROWS if r["split"] == split])
    assert precision >= 0.95
    assert recall >= 0.95


@pytest.mark.parametrize("language", LANGUAGES)
def test_precision_and_recall_per_language(language: str) -> None:
    precision, recall = _rates([r for r in ROWS if r["language"] == language])
    assert precision >= 0.9
    assert recall >= 0.9


# --- normalisation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("K1LL", "kil"),
        ("k!ll", "kil"),
        ("ki11", "kil"),
        ("kiiiill", "kil"),
        ("k.i.l.l", "kil"),
        ("k-i-l-l", "kil"),
        ("k i l l him", "kil him"),
        ("E X E C U T E or go", "execute or go"),
        ("3xecute", "execute"),
        ("d34th", "death"),
        ("sh00t h1m", "shot him"),
        ("L1ve or d1e", "live or die"),
        ("EXÉCUTÉ", "execute"),
        ("Öldürün", "oldurun"),
        ("erschießen", "erschiesen"),
    ],
)
def test_latin_leetspeak_spacing_case_and_accents(raw: str, expected: str) -> None:
    assert normal_form(raw) == expected


def test_numbers_and_units_are_not_read_as_leetspeak() -> None:
    assert normal_form("1h 30min 2nd 1999") == "1h 30min 2nd 1999"
    assert [t.text for t in tokenize(normalise("1h"))] == ["1", "h"]


def test_zero_width_and_invisible_characters_are_dropped() -> None:
    assert normal_form("ki\u200bll\u200c hi\u200dm\ufeff") == "kil him"
    assert normal_form("exe\u00adcute") == "execute"


def test_arabic_diacritics_tatweel_and_letter_variants() -> None:
    assert normal_form("نُعْدِمُ") == normal_form("نعدم")
    assert normal_form("هـــذا الخـــائن") == normal_form("هذا الخائن")
    assert normal_form("أحمد إسلام آمن ٱلعالم") == "احمد اسلام امن العالم"
    assert normal_form("على") == normal_form("علي")
    assert normal_form("الليلة") == normal_form("الليله")
    assert normal_form("صوّتوا") == normal_form("صوتوا")


def test_persian_urdu_and_kurdish_letters_fold_to_arabic_forms() -> None:
    assert normal_form("بکشیم") == normal_form("بكشيم")
    assert normal_form("پھانسی") == normal_form("پهانسي")
    assert normal_form("ہے") == normal_form("هي")
    assert normal_form("لەسێدارە") == normal_form("لهسيداره")
    assert normal_form("می‌کشیم") == normal_form("میکشیم")
    assert normal_form("۲ ساعت") == "2 ساعت"
    assert normal_form("١٦٤٩") == "1649"


def test_cyrillic_leet_and_look_alikes() -> None:
    assert normal_form("уб1ть") == "убить"
    assert normal_form("Kазнить") == "казнить"
    assert normal_form("Kіll") == "kil"


def test_emoji_variation_selectors_and_skin_tones_are_dropped() -> None:
    assert normal_form("☠️ 👍🏽 1️⃣") == "☠ 👍 1"


def test_original_maps_normalised_spans_back_to_the_post() -> None:
    norm = normalise("KIIILL h1m")
    start = norm.text.index("kil")
    assert norm.original(start, start + 3) == "KIIILL"
    norm = normalise("هَلْ نُعْدِمُ")
    start = norm.text.index("نعدم")
    assert norm.original(start, start + 4) == "نُعْدِمُ"


# --- explanations and API ----------------------------------------------------------


def test_firing_explains_cue_names_original_phrases_and_language() -> None:
    result = assess("sh0uld w3 k1ll h1m or l3t h1m g0?? vote below")
    assert result.fired and result.kind is Kind.vote
    assert result.language == "en"
    assert ("harm_act", "k1ll", "en", WEIGHTS["harm_act"]) in [
        (c.name, c.phrase, c.language, c.weight) for c in result.cues
    ]
    names = {c.name for c in result.cues}
    assert {"harm_act", "target_person", "choice_pair", "audience_decides"} <= names
    line = result.explain()
    assert "\n" not in line
    assert "harm_act 'k1ll' (en" in line
    assert "lang=en" in line


def test_arabic_explanation_quotes_the_post_with_its_diacritics() -> None:
    result = assess("هَلْ نُعْدِمُ هـــذا الخـــائن أم نعفو عنه؟ صوّتوا الآن")
    assert result.fired and result.language == "ar"
    phrases = {c.phrase for c in result.cues}
    assert "نُعْدِمُ" in phrases
    assert any("هـــذا الخـــائن" in p for p in phrases)


def test_announcement_kind_and_poll_options() -> None:
    result = assess("The people have voted. As you wish, we will kill him.")
    assert result.kind is Kind.announcement
    assert "outcome" in {c.name for c in result.cues}
    result = assess("", question="this dog tried to run. your call", options=["💀", "🕊️"])
    assert result.fired and result.kind is Kind.vote
    pair = next(c for c in result.cues if c.name == "choice_pair")
    assert pair.phrase == "💀 / 🕊️"


def test_dampeners_are_listed_with_negative_weights() -> None:
    result = assess("Mafia night! The town votes: lynch Sam or spare him? Game ends at midnight 😂")
    assert not result.fired
    assert {"fiction_game", "humor"} <= {d.name for d in result.dampeners}
    assert all(d.weight < 0 for d in result.dampeners)
    assert "dampeners:" in result.explain()


def test_negated_frame_does_not_dampen() -> None:
    plain = assess("This is a game. Kill him or let him go? Vote, one hour.")
    negated = assess("This is not a game. Kill him or let him go? Vote, one hour.")
    assert "fiction_game" in {d.name for d in plain.dampeners}
    assert negated.dampeners == ()
    assert negated.score > plain.score


def test_threshold_and_empty_input() -> None:
    result = assess("Kill him or let him go? You have one hour to vote.", threshold=1.0)
    assert not result.fired and result.kind is None and result.score < 1.0
    assert result.threshold == 1.0
    empty = assess(None)
    assert empty.score < DEFAULT_THRESHOLD and empty.cues == () and empty.language is None
    with pytest.raises(UserError, match="threshold"):
        assess("x", threshold=1.5)


def test_every_cue_name_is_documented_and_scored() -> None:
    for row in ROWS:
        result = _assess(row)
        for cue in (*result.cues, *result.dampeners):
            assert cue.name in WEIGHTS, cue
            assert cue.language in {lex.language for lex in load()}, cue
    for cls in CueClass:
        if cls.effect is not Effect.helper:
            assert cls.value in WEIGHTS


def test_all_lexicons_load_and_compile() -> None:
    lexicons = load()
    assert {lex.language for lex in lexicons} >= {*LANGUAGES, "zxx"}
    assert len(lexicons) == len(lexicon_files())
    for lex in lexicons:
        for cue, entries in lex.entries.items():
            for entry in entries:
                stem = stemmer(lex.stemmer) if lex.stemmer else None
                assert compile_entry(entry, language=lex.language, cue=cue, stem=stem)


def test_malformed_entry_is_an_internal_error() -> None:
    with pytest.raises(InternalError, match="entry"):
        compile_entry("~ kill", language="en", cue=CueClass.harm_act)
    with pytest.raises(InternalError, match="entry"):
        compile_entry("kill* {a b|c}*", language="en", cue=CueClass.harm_act)


def test_long_or_flooded_posts_are_bounded() -> None:
    result = assess("word " * 50_000 + "Kill him or let him go? Vote now, one hour.")
    assert result.fired
    assert assess("💀🕊👍" * 5000, options=["x"] * 500).score <= 1.0


# --- romanised text, slang, hyperbole (round of the independent set) --------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("na2tolo walla n7arrero? sawto", "ar"),
        ("bekoshimesh ya azadesh konim? ray bedid", "fa"),
        ("bikujin yan azad bkeyn? deng bden", "ckb"),
        ("ubit ego ili otpustit? golosuyte", "ru"),
        ("isay maar do ya chhor do? vote karo", "ur"),
    ],
)
def test_romanised_posts_fire_in_their_own_language(text: str, language: str) -> None:
    result = assess(text)
    assert result.fired, result.explain()
    assert result.language == language, result.explain()


def test_roman_urdu_word_is_not_a_turkish_cue() -> None:
    result = assess("woh log yahan hain, kal milte hain")
    assert all(c.language != "tr" for c in result.cues), result.explain()


def test_arabizi_digits_read_as_letters() -> None:
    assert normal_form("na2tolo") == normal_form("naatolo")
    assert normal_form("9arar") == "qarar"


def test_german_umlaut_written_as_two_letters_matches() -> None:
    spelled = assess("Sollen wir ihn toeten oder laufen lassen? Ihr entscheidet")
    marked = assess("Sollen wir ihn töten oder laufen lassen? Ihr entscheidet")
    assert spelled.fired and spelled.score == marked.score
    # only German patterns read the folded form: English "does" stays "does"
    assert not assess("Does he go? lol").cues


def test_laughter_does_not_cancel_a_clear_harm_vote_but_hyperbole_does() -> None:
    vote = assess("We caught the snitch. Merk him or let him walk? Vote below 😂")
    assert vote.fired, vote.explain()
    roommate = assess("My roommate ate my pizza, kill him or forgive him? Vote 😂")
    assert not roommate.fired, roommate.explain()
    assert any(c.name == "hyperbole" for c in roommate.dampeners)
