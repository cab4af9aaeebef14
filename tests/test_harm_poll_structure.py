"""How the harm-poll detector reads a post's shape: who is asked, what is quoted, what is a
joke, a slogan, a report; the two tiers and the explanation. Examples written for these
tests (the evaluation sets are never read here)."""

from __future__ import annotations

import pytest

from amber.harm_poll import assess
from amber.policy import Verdict, load_policy
from amber.signals.harm_poll import explain_text

POLICY = load_policy()


def verdict(text: str, question: str | None = None, options: tuple[str, ...] = ()) -> Verdict:
    return explain_text(text, question=question, options=options, policy=POLICY)[1].verdict


def names(text: str, **poll: object) -> set[str]:
    result = assess(text, **poll)  # type: ignore[arg-type]
    return {c.name for c in (*result.cues, *result.dampeners)}


# --- dampeners never veto alone ------------------------------------------------------


def test_a_taunt_with_laughter_is_still_a_vote_on_a_captive() -> None:
    text = "We caught the spy 😂 kill him or let him go? Vote, one hour"
    assert verdict(text) is Verdict.restrict, assess(text).explain()


def test_a_vote_on_a_named_journalist_is_a_harm_poll() -> None:
    text = "Should we kill the journalist @reporter_xy or let her go? Vote now"
    result = assess(text)
    assert verdict(text).rank >= Verdict.review.rank, result.explain()
    assert {"target_named"} <= {c.name for c in result.cues}


def test_police_and_journalist_words_do_not_make_a_vote_news() -> None:
    text = "This police informant is in our hands. Kill him or release him? Vote."
    assert verdict(text) is Verdict.restrict, assess(text).explain()


def test_a_report_quoting_the_caption_is_news() -> None:
    text = (
        'Police said the group posted "Kill him or let him go? You have one hour to vote" '
        "before the account was closed."
    )
    result = assess(text)
    assert verdict(text) is Verdict.allow, result.explain()
    assert all(c.quoted for c in result.cues)


def test_a_quotation_without_a_frame_word_is_still_a_quotation() -> None:
    text = 'Seen today: "Kill him or let him go? One hour to vote." Unbelievable.'
    assert verdict(text).rank < Verdict.restrict.rank, assess(text).explain()


def test_a_report_of_followers_asked_to_vote_is_not_a_call_to_vote() -> None:
    text = "Researchers found the militia asked followers to vote on killing a prisoner."
    assert verdict(text) is Verdict.allow, assess(text).explain()


# --- jokes, games, animals, slogans ------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "My brother ate the last slice. Kill him or forgive him? Vote 😂",
        "Game night! Werewolf round 3: vote who we execute tonight, NPC style 😂",
        "Rats in the shed again 😩 kill the rats or catch them and let them go? Vote",
        "DERBY TONIGHT 🔥 Kill or be killed! Destroy them!",
    ],
)
def test_jokes_games_pests_and_slogans_are_allowed(text: str) -> None:
    assert verdict(text) is Verdict.allow, assess(text).explain()


def test_an_animal_named_once_over_a_captive_poll_is_an_insult_not_pest_control() -> None:
    result = assess("Rat.", question="?", options=["Execute", "Release"])
    assert verdict("Rat.", "?", ("Execute", "Release")).rank >= Verdict.review.rank, (
        result.explain()
    )


def test_announcement_without_a_kill_verb_reaches_review() -> None:
    for text in (
        "You decided. It is done.",
        "Ihr habt entschieden. Erledigt.",
        "As you wished, the spy has met his fate.",
    ):
        assert verdict(text).rank >= Verdict.review.rank, assess(text).explain()


def test_answers_numbered_one_and_two_are_a_vote() -> None:
    text = "The spy is here. Comments: 1 zzkrrbl, 2 let him go. One hour."
    assert "reaction_vote" in names(text), assess(text).explain()


def test_kill_or_die_is_read_as_a_slogan() -> None:
    assert "idiom" in names("Tonight it is kill or die, boys 🔥")


def test_a_lone_reaction_next_to_a_harm_word_is_not_a_vote() -> None:
    assert "reaction_vote" not in names("🔥 kill them all on the pitch tonight")


# --- votes read from their shape ---------------------------------------------------


def test_answers_in_quotes_are_a_poll_and_a_life_against_unknown_words_a_choice() -> None:
    text = "We have the thief. Do we finish him? Comment 'RIVER' or 'MERCY', the majority decides"
    result = assess(text)
    cues = {c.name for c in result.cues}
    assert {"poll_structure", "choice_pair"} <= cues, result.explain()
    assert verdict(text).rank >= Verdict.review.rank


def test_like_equals_yes_on_a_harm_act_is_a_vote() -> None:
    text = "Do we burn his house tonight? Like = yes. 500 likes and it happens"
    assert "reaction_vote" in names(text)


def test_a_life_against_unknown_words_after_equals_is_an_implied_choice() -> None:
    text = "The snitch is here. 👍 = he lives, 👎 = zzkrrbl tonight. Vote"
    result = assess(text)
    pairs = [c for c in result.cues if c.name == "choice_pair"]
    assert pairs and pairs[0].weight < 2.5, result.explain()  # weaker than a named choice


def test_a_vote_share_is_an_outcome() -> None:
    result = assess("1 hour left. 80% said execute ⏳")
    assert any(c.name == "outcome" and c.language == "zxx" for c in result.cues)


def test_a_vote_that_asks_nobody_stays_in_the_review_tier() -> None:
    text = "The prisoner in our hands will be executed or released by the group."
    result = assess(text)
    assert result.score < 0.5, result.explain()


# --- explanations ------------------------------------------------------------------


def test_explanation_names_language_lexicon_cues_and_steps() -> None:
    result = assess("Kill him or let him go? You have one hour to vote")
    line = result.explain()
    assert "lang=en" in line and "lexicon=full" in line and "choice_pair" in line
    assert result.steps[0].startswith("vote = bias")
    assert result.steps[-1].startswith("score = logistic")
    data = result.to_json()
    assert data["language"]["code"] == "en" and data["language"]["lexicon"] == "full"
    assert {c["name"] for c in data["cues"]} >= {"harm_act", "choice_pair", "deadline"}


# --- round 3: mercy denied, lenient answers, shares, reports, stories -----------------


def test_mercy_denied_is_the_harm() -> None:
    text = "The vote is closed. 87% said no mercy for the traitor. Done."
    result = assess(text)
    assert verdict(text).rank >= Verdict.review.rank, result.explain()
    assert any(c.name == "harm_act" and c.phrase == "no mercy" for c in result.cues)


def test_a_word_that_also_means_or_does_not_deny_the_answer_after_it() -> None:
    # Arabic "ولا" is "or" here ("kill him or leave him?"), not "and not"
    result = assess("نقتله ولا نتركه؟ صوتوا، معكم ساعة")
    assert not any(c.phrase.startswith("ولا") and c.name == "harm_act" for c in result.cues)
    assert {"spare_act", "harm_act"} <= {c.name for c in result.cues}, result.explain()


def test_a_share_of_votes_with_the_deed_done_is_an_outcome() -> None:
    result = assess("Voting is over: 91% chose. It is done. Let this be a lesson.")
    assert any(c.name == "outcome" and "%" in c.phrase for c in result.cues), result.explain()


def test_the_police_against_unknown_words_over_a_captive_is_a_choice() -> None:
    # the other answer is in words amber does not know; handing over to the police is
    # weaker than releasing, but with a captive tied up it still sets off a choice
    text = (
        "Caught this thief at the market, he is tied to the post. "
        "👍 = hand him to the police, 🔥 = zvakanaka pano. Vote by 9pm."
    )
    result = assess(text)
    assert "choice_pair" in {c.name for c in result.cues}, result.explain()
    assert verdict(text).rank >= Verdict.review.rank, result.explain()


def test_a_report_of_a_choice_put_to_followers_asks_its_readers_nothing() -> None:
    text = (
        "Human rights groups condemned an armed group that asked its followers whether "
        "to execute a prisoner or release him."
    )
    assert verdict(text) is Verdict.allow, assess(text).explain()


@pytest.mark.parametrize(
    ("text", "question", "options", "expected"),
    [
        # a report with a poll of its own is still a vote
        (
            "The journalist who lied about us is in our hands. You decide.",
            "The journalist:",
            ("Execute him", "Release him"),
            Verdict.restrict,
        ),
        # a story character's fate is not a harm poll
        (
            "Season 3 finale tonight! Should Marcus die or survive? Vote 😭",
            "Marcus?",
            ("Die", "Survive"),
            Verdict.allow,
        ),
        # the thief of the last slice, among friends, is a joke
        (
            "Who ate my last slice of pizza?? Hang the thief or forgive? 😂😂",
            "Pizza thief",
            ("Hang 😂", "Forgive"),
            Verdict.allow,
        ),
    ],
)
def test_polls_of_a_report_a_story_and_a_joke(
    text: str, question: str, options: tuple[str, ...], expected: Verdict
) -> None:
    result = assess(text, question=question, options=options)
    assert verdict(text, question, options) is expected, result.explain()


def test_a_negation_of_another_language_does_not_deny_mercy() -> None:
    # Indonesian "ga" (not) is Serbo-Croatian "ga" (him): "we kill him or let him go"
    result = assess("Ubijemo ga ili ga pustimo? Glasajte do večeras")
    assert {"choice_pair", "spare_act"} <= {c.name for c in result.cues}, result.explain()


def test_armenian_marks_inside_a_word_keep_the_word_whole() -> None:
    from amber.harm_poll.normalize import normalise

    assert normalise("սպանե՞նք").text == normalise("սպանենք").text == "սպանենք"


def test_a_pronoun_of_another_language_is_not_the_object_of_a_fate() -> None:
    # Czech "mu" (him) beside a Kinyarwanda "will die": "will Kagabo die in the next episode?"
    result = assess("Kagabo azapfa mu gice gikurikira?")
    assert not any(c.name == "target_person" and c.phrase == "mu" for c in result.cues), (
        result.explain()
    )


def test_a_reaction_followed_by_if_is_an_answer_offered() -> None:
    text = "Like if you think this rat should finally be executed. We have him."
    result = assess(text)
    assert "reaction_vote" in {c.name for c in result.cues}, result.explain()
    assert verdict(text).rank >= Verdict.review.rank, result.explain()


def test_a_captives_fate_put_to_a_vote_in_unknown_words_goes_to_review() -> None:
    text = "We caught this one at the checkpoint. You decide. Vote closes at 10pm"
    question, options = "His fate", ("🌊", "🏠")
    result = assess(text, question=question, options=options)
    assert verdict(text, question, options) is Verdict.review, result.explain()
    # the same poll over a meeting place is everyday
    text = "Team dinner on Friday. You decide. Vote closes at 10pm"
    assert verdict(text, "Where?", ("🍕", "🏠")) is Verdict.allow
