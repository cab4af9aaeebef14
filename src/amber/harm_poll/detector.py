"""Scoring a post: evidence in, one ``Assessment`` out.

The score is a logistic function of summed evidence (log-odds), built from cue
classes rather than from sentences:

- ``harm`` (harm act or death word) is required: without it the score stays low;
- a vote needs ``decision`` evidence (a choice pair, the audience asked to decide, a
  reaction vote, a poll) and, unless the choice or reaction itself implies one, a
  ``victim`` (a target person or a captive; stronger when next to the harm act);
- an announcement needs an ``outcome`` phrase (``the people have voted``, ``as you
  wish``) together with the harm act, or a harm done (``was executed``, ``اعدام شد``)
  next to any word of voting or deciding;
- a deadline and a spare act add to a vote;
- dampeners (news report, fiction or game, sport, idiom, animal or pest, debate,
  history, petition, condemnation, humour, hyperbole) subtract; a dampener just after
  a negation (``this is not a game``) does not count; humour weighs less in a clear
  harm vote (a choice pair, a victim, the audience asked).

Within a class the strongest cue counts fully and each further one a quarter;
dampeners add up with the strongest counting fully and the rest at 60%.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace

from amber.errors import UserError
from amber.harm_poll.language import (
    LanguageGuess,
    fasttext_guesses,
    identify,
    related,
    stem_languages,
)
from amber.harm_poll.lexicon import FRAMES, CueClass, Effect
from amber.harm_poll.matcher import (
    Hit,
    Index,
    default_index,
    find_matches,
    language_scores,
    resolve,
    stopword_scores,
)
from amber.harm_poll.model import DEFAULT_THRESHOLD, Assessment, Cue, Kind
from amber.harm_poll.structure import Evidence, Nearby, PostView, derive, read_post

#: Log-odds each cue adds at full strength (dampeners subtract).
WEIGHTS: dict[str, float] = {
    "harm_act": 2.0,
    "harm_done": 2.0,
    "euphemism": 1.6,
    "death_word": 1.2,
    "spare_act": 0.8,
    "life_word": 0.5,
    "choice_pair": 2.5,
    "target_person": 1.0,
    "captive": 1.0,
    "target_named": 1.0,
    "audience_decides": 1.6,
    "deadline": 1.0,
    "outcome": 2.5,
    "finality": 1.2,
    "poll_structure": 1.0,
    "reaction_vote": 2.0,
    "news_report": -3.0,
    "fiction_game": -3.0,
    "sports": -2.5,
    "idiom": -1.5,
    "animal_pest": -3.0,
    "debate": -3.0,
    "history": -2.5,
    "petition": -3.5,
    "condemnation": -2.5,
    "humor": -2.0,
    "hyperbole": -3.0,
}
#: Characters of a post's text read (head and tail of longer text), of its question and
#: of each option, and how many options: beyond these, posts are not polls but floods.
MAX_TEXT = 10_000
MAX_PART = 1_000
MAX_OPTIONS = 32
#: Log-odds of a post with no evidence at all.
BIAS = -5.0
#: Highest log-odds a post without a harm act can reach.
NO_HARM_CAP = -2.5
#: Highest log-odds of a vote nobody is asked to decide.
NO_DECISION_CAP = -1.0
#: Highest log-odds of a vote with no victim, no choice pair and no reaction vote.
NO_VICTIM_CAP = -0.5
#: Harm read into a life word ("let him live") said of a victim, with no harm act.
IMPLIED_HARM = 0.8
#: A death word in a post announcing a vote's outcome counts as this many death words
#: ("the majority chose death"): as much as a harm act.
CHOSEN_DEATH = 2.0 / 1.2
#: Finality words ("justice is served", "it is done") stand for the harm in an
#: announcement that names no act, at this multiple of their weight.
FINALITY_AS_HARM = 1.2
#: Frames that describe or mock rather than change what the vote is about. In a vote
#: addressed to the audience (cues of ``ADDRESSED`` outside quotation marks, and a
#: victim, choice or reaction vote) they count at ``FRAME_IN_VOTE`` of their weight:
#: a quoted caption inside reporting is news, a taunt with 😂 is not a joke. Dampeners
#: that change the target (animals, games, sport, idioms, "my brother") count fully.
FRAME_IN_VOTE = 0.25
#: Frames that report a vote rather than hold one.
REPORTING = frozenset({"news_report", "condemnation"})
#: Share of a captive word's full weight from which a captive is held.
HELD = 0.8
#: Highest log-odds of a post framed as a report or condemnation that asks nobody, and
#: of a joke (nobody held; laughter with a brother, a game or twice over).
FRAMED_CAP = -2.5
JOKE_CAP = -2.5
#: Highest log-odds of a vote that asks nobody (no question mark on the choice, no poll,
#: no answers, no call to vote): within the review tier, below restrict.
UNADDRESSED_CAP = -0.1
#: Share of a quoted positive cue's weight when the post frames it (news, condemnation...).
QUOTED_IN_FRAME = 0.5
#: Confidence of the language guess from which cues of unrelated languages whose common
#: words are absent count at ``FOREIGN`` of their weight. English is never foreign (it is
#: mixed into posts everywhere); nor are a main language's kin (``language.KIN``).
CLEAR_LANGUAGE = 0.8
FOREIGN = 0.5
#: Weight fastText's guess adds to its language when lexicons overlap on the same words.
FASTTEXT_BACKING = 2.0
#: Share of the weight each further cue of a class adds.
FURTHER = 0.25
#: Share of the weight each further dampener subtracts, and the most they subtract.
FURTHER_DAMPENER = 0.6
DAMPENER_CAP = 9.0
#: How many content tokens before a dampener a negation cancels it (and after, for
#: languages that negate after the noun).
NEGATION_BEFORE = 2
NEGATION_AFTER = 1


def assess(
    text: str | None,
    *,
    question: str | None = None,
    options: Sequence[str] = (),
    threshold: float = DEFAULT_THRESHOLD,
) -> Assessment:
    """Score a post (text, poll question and options) for a vote on a person's life.

    Raises ``UserError`` when ``threshold`` is not between 0 and 1.
    """
    if not 0.0 <= threshold <= 1.0:
        raise UserError(f"harm_poll threshold {threshold!r} must be between 0 and 1")
    index = default_index()
    text = _clip(text or "", MAX_TEXT)
    question = None if question is None else _clip(question, MAX_PART)
    kept_options = tuple(_clip(o, MAX_PART) for o in list(options)[:MAX_OPTIONS] if o is not None)
    view = read_post(text, question, kept_options)
    stops = stopword_scores(index, view.content)
    whole = "\n".join(p for p in (text, question or "", *kept_options) if p)
    guesses = fasttext_guesses(whole)
    matches, guess = _matches(view, index, stops, guesses, whole)
    evidence = derive(view, matches, index)
    cues = [_cue(view, e) for e in evidence]
    if guess.code is not None and guess.confidence >= CLEAR_LANGUAGE:
        # a word of an unrelated language, none of whose common words appear, is more
        # likely a false friend (Turkish "dil" is not Somali "dil", kill) than a cue
        cues = [
            replace(c, weight=round(c.weight * FOREIGN, 3))
            if _foreign(c.language, guess.code, stops)
            else c
            for c in cues
        ]
    positives = sorted(
        (c for c in cues if c.weight > 0), key=lambda c: (-c.weight, c.name, c.phrase)
    )
    dampeners = sorted((c for c in cues if c.weight < 0), key=lambda c: (c.weight, c.name))
    if any(c.name in FRAMES and not c.quoted for c in dampeners):
        # a report quoting a caption: the quoted words are the report's subject
        positives = [
            replace(c, weight=round(c.weight * QUOTED_IN_FRAME, 3)) if c.quoted else c
            for c in positives
        ]
    z, kind, steps = _log_odds(positives, dampeners)
    score = round(1.0 / (1.0 + math.exp(-z)), 4)
    steps.append(f"score = logistic({z:+.2f}) = {score:.2f}")
    return Assessment(
        score=score,
        kind=kind if score >= threshold else None,
        language=guess.code or _language(positives) or _language(dampeners),
        cues=tuple(_dedupe(positives)),
        dampeners=tuple(_dedupe(dampeners)),
        threshold=threshold,
        guess=guess,
        steps=tuple(steps),
    )


def _clip(text: str, limit: int) -> str:
    """Long text keeps its head and its tail (where a poll's call to vote sits)."""
    if len(text) <= limit:
        return text
    head = limit * 4 // 5
    return text[:head] + "\n" + text[len(text) - (limit - head) :]


def _matches(
    view: PostView,
    index: Index,
    stops: dict[str, float],
    guesses: list[tuple[str, float]],
    whole: str,
) -> tuple[list[Hit], LanguageGuess]:
    """Lexicon matches after overlaps and negations, and the post's language."""
    found = find_matches(
        index, view.content, view.segments, stem_languages=stem_languages(guesses, stops)
    )
    scores = language_scores(index, view.content, found, stopwords=stops)
    guess = identify(whole, lexicon_scores=scores, coverage=index.coverage, guesses=guesses)
    if guess.code is not None and guess.confidence >= CLEAR_LANGUAGE:
        # a helper word (or, him, like, =) works only in its own language's sentences
        found = [
            m
            for m in found
            if m.cue.effect is not Effect.helper or not _foreign(m.language, guess.code, stops)
        ]
    if not found:
        return [], guess
    backed = dict(scores)
    for code, p in guesses:
        if code in backed:  # fastText's guess settles ties between lexicons
            backed[code] += FASTTEXT_BACKING * p
    kept = resolve(found, index, view.content, backed)
    return _drop_negated(kept, view), guess


def _drop_negated(matches: list[Hit], view: PostView) -> list[Hit]:
    """Dampeners right after (or, for some languages, before) a negation do not count."""
    negations = Nearby(m for m in matches if m.cue is CueClass.negation)
    if not negations.items:
        return matches
    segs = view.segments
    out: list[Hit] = []
    for m in matches:
        if m.cue.effect is Effect.dampener and any(
            segs[n.start] == segs[m.start]
            and (0 <= m.start - n.end < NEGATION_BEFORE or 0 <= n.start - m.end < NEGATION_AFTER)
            for n in negations.around(m.start - NEGATION_BEFORE, m.end + NEGATION_AFTER)
        ):
            continue
        out.append(m)
    return out


def _cue(view: PostView, e: Evidence) -> Cue:
    phrase = " / ".join(view.norm.original(a, b) for a, b in e.spans)
    weight = round(WEIGHTS[e.name] * e.factor, 3)
    quoted = e.quoted or view.quoted(e.spans)
    return Cue(
        name=e.name,
        phrase=phrase,
        language=e.language,
        weight=weight,
        quoted=quoted,
        asked=e.asked,
    )


def _dedupe(cues: Iterable[Cue]) -> list[Cue]:
    seen: set[tuple[str, str]] = set()
    out: list[Cue] = []
    for c in cues:
        key = (c.name, c.phrase)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def _strength(cues: Sequence[Cue], *names: str) -> float:
    """Strongest cue of the classes fully, each further distinct phrase a quarter."""
    weights = sorted(
        {(c.phrase.casefold(), c.name): abs(c.weight) for c in cues if c.name in names}.values(),
        reverse=True,
    )
    if not weights:
        return 0.0
    return min(weights[0] + FURTHER * sum(weights[1:]), 1.5 * weights[0])


def _log_odds(positives: Sequence[Cue], dampeners: Sequence[Cue]) -> tuple[float, Kind, list[str]]:
    """Log-odds of the post, its kind, and the steps that made them (for ``explain``)."""
    steps: list[str] = []
    names = {c.name for c in positives}
    harm = _strength(positives, "harm_act", "harm_done", "euphemism", "death_word")
    if "choice_pair" in names:
        # "live or die", "yaşasın mı ölsün mü": the pair itself names death
        harm = max(harm, WEIGHTS["death_word"])
    victim = _strength(positives, "target_person", "captive", "target_named")
    if not harm and victim and "life_word" in names:
        # "should we let this infidel live?": sparing a life implies taking it
        harm = IMPLIED_HARM
    # a captive held, the audience asked, and answers offered in words amber does not
    # know ("the one we caught at the checkpoint. You decide." 🌊 / 🏠): a person's fate,
    # put to a vote: a person looks (review), nothing is hidden on this alone
    # a captive held: a word of capture at full strength ("thief" alone is weaker: the
    # friend who ate the last samosa)
    captive_held = _strength(positives, "captive") >= HELD * WEIGHTS["captive"]
    unknown_fate = (
        not harm
        and captive_held
        and _strength(positives, "audience_decides") > 0
        and any(
            (c.name == "poll_structure" and c.language == "zxx") or c.name == "reaction_vote"
            for c in positives
        )
    )
    if unknown_fate:
        harm = IMPLIED_HARM
        steps.append(f"a captive's fate put to a vote in unknown words: harm {harm:.2f}")
    spare = _strength(positives, "spare_act", "life_word")
    pair = _strength(positives, "choice_pair")
    reaction = _strength(positives, "reaction_vote")
    audience = _strength(positives, "audience_decides")
    decision = pair + reaction + audience + _strength(positives, "poll_structure")
    deadline = _strength(positives, "deadline")
    outcome = _strength(positives, "outcome")
    finality = _strength(positives, "finality")

    vote = BIAS + harm + spare + victim + decision + deadline
    steps.append(
        f"vote = bias {BIAS:+.1f} + harm {harm:.2f} + spare {spare:.2f} + victim {victim:.2f}"
        f" + decision {decision:.2f} + deadline {deadline:.2f} = {vote:+.2f}"
    )
    if decision == 0:
        vote = min(vote, NO_DECISION_CAP)
        steps.append(f"nobody is asked to decide: vote at most {NO_DECISION_CAP:+.1f}")
    if victim == 0 and pair == 0 and reaction == 0:
        vote = min(vote, NO_VICTIM_CAP)
        steps.append(f"no victim, choice or reaction vote: vote at most {NO_VICTIM_CAP:+.1f}")
    if "harm_done" in names:
        # "you voted ... he was executed": a vote named next to a harm done announces it
        outcome = max(outcome, audience)
    has_act = bool(names & {"harm_act", "harm_done", "euphemism"})
    if outcome and not has_act:
        # "the majority chose death": death named as the outcome of a vote is the harm;
        # "you decided. It is done.": the deed done, in other words (a word of finality
        # that alone is everyday counts in full next to a vote's outcome)
        done = FINALITY_AS_HARM * WEIGHTS["finality"] if finality else 0.0
        chosen = CHOSEN_DEATH * _strength(positives, "death_word")
        implied = max(chosen, done)
        if implied > harm:
            harm = implied
            steps.append(f"outcome with death or finality words: harm {harm:.2f}")
    announcement = -math.inf
    if outcome:
        announcement = BIAS + harm + outcome + victim + 0.5 * deadline + FURTHER * finality
        steps.append(
            f"announcement = bias {BIAS:+.1f} + harm {harm:.2f} + outcome {outcome:.2f}"
            f" + victim {victim:.2f} + finality/deadline = {announcement:+.2f}"
        )
    kind = Kind.announcement if announcement >= vote else Kind.vote
    z = max(vote, announcement)
    if harm == 0:
        z = min(z, NO_HARM_CAP)
        steps.append(f"no harm, death or finality word: at most {NO_HARM_CAP:+.1f}")

    # A vote addressed to the audience (asked in the post's own voice, not quoted) with
    # a victim: a frame (news, humour, condemnation) cannot make it harmless on its own.
    # Laughter counts in full where nobody is held or named as a target and the post
    # jokes: laughs twice, laughs in the answers themselves ("Death 😂 / Forgiveness"),
    # or is about a brother or a game: the tiramisu thief, the Mafia night.
    # a call to vote with a time limit is addressed, whatever its words ("counting votes
    # at 8pm")
    live = any(c.name == "audience_decides" and not c.quoted for c in positives) and any(
        c.name == "deadline" and not c.quoted for c in positives
    )
    addressed = (live or any(_addressed(c) for c in positives)) and bool(victim or pair or reaction)
    if addressed and any(c.name in REPORTING and not c.quoted for c in dampeners):
        # a report tells of a choice put to others ("the group asked its followers whether
        # to execute or free a prisoner"); it asks its own readers only with the means of a
        # vote: a poll, answers to react or comment with, or a call with a time limit
        addressed = (
            live
            or reaction > 0
            or any(
                c.name == "poll_structure" and c.language == "zxx" and not c.quoted
                for c in positives
            )
        )
    # a captive held or a target named at full strength
    held = captive_held or any(
        c.name == "target_named" and c.weight >= WEIGHTS["target_named"] for c in positives
    )
    dampened = {c.name for c in dampeners}
    laughs = sum(1 for c in dampeners if c.name == "humor")
    # an animal named once may be an insult for the captive ("Rat." over "Execute /
    # Release"); pest control names its animals again (the question, the traps)
    animals = sum(1 for c in dampeners if c.name == "animal_pest")
    playful = bool(dampened & {"hyperbole", "fiction_game"}) or animals >= 2
    # an episode and a level; or a series, a novel or a game where nobody is held or
    # threatened: the fate voted on is a character's
    stories = sum(1 for c in dampeners if c.name == "fiction_game")
    fiction = stories >= 2 or (stories == 1 and not held)
    joking = fiction or (
        not held
        and (
            laughs >= 2
            or any(c.name == "humor" and " / " in c.phrase for c in dampeners)
            or playful
        )
    )
    damp: list[float] = []
    for c in dampeners:
        reduced = addressed and c.name in FRAMES and not (joking and c.name == "humor")
        # "brothers" is how gangs address their followers: with a captive held, a word of
        # family or friendship is the audience, not the joke's target
        reduced = reduced or (addressed and held and c.name == "hyperbole")
        damp.append(abs(c.weight) * (FRAME_IN_VOTE if reduced else 1.0))
    damp.sort(reverse=True)
    framed = any(c.name in FRAMES and not c.quoted for c in dampeners)
    if damp:
        total = min(damp[0] + FURTHER_DAMPENER * sum(damp[1:]), DAMPENER_CAP)
        z -= total
        why = (
            f" (frames at {FRAME_IN_VOTE:.0%}: a vote addressed to the audience)"
            if (addressed and any(c.name in FRAMES for c in dampeners))
            else ""
        )
        steps.append(f"dampeners -{total:.2f}{why}")
    if joking and (laughs or playful) and z > JOKE_CAP:
        # nobody held, and a laugh, a brother, a game or an animal: not a person's life
        z = JOKE_CAP
        steps.append(f"nobody held; a joke, a game or an animal: at most {JOKE_CAP:+.1f}")
    if unknown_fate and z > UNADDRESSED_CAP:
        z = UNADDRESSED_CAP
        steps.append(f"answers in unknown words: at most {UNADDRESSED_CAP:+.1f} (review)")
    if kind is Kind.vote and not addressed and z > UNADDRESSED_CAP:
        # a vote nobody is asked to take (no question, no poll, no call to vote) is not
        # clear enough to hide: a person looks at it
        z = UNADDRESSED_CAP
        steps.append(f"nobody is asked: at most {UNADDRESSED_CAP:+.1f} (review)")
    fates = [c for c in positives if c.name in ("harm_act", "harm_done", "choice_pair")]
    quoting = bool(fates) and all(c.quoted for c in fates)
    if (framed or quoting) and not addressed and z > FRAMED_CAP:
        # a report, a condemnation or a quotation of such a vote, asking nobody anything
        z = FRAMED_CAP
        steps.append(f"reported, not asked: at most {FRAMED_CAP:+.1f}")
    return z, kind, steps


def _foreign(language: str, main: str, stops: dict[str, float]) -> bool:
    """Is a cue of ``language`` foreign to a post clearly in ``main``?"""
    if language in ("zxx", "en") or stops.get(language, 0.0) > 0:
        return False
    return not related(language, main)


def _addressed(cue: Cue) -> bool:
    """Is this cue the post asking its own audience (not a quote, not the word "poll")?"""
    if cue.quoted:
        return False
    if cue.name == "poll_structure":
        return cue.language == "zxx"  # the poll's own options or option lines
    if cue.name in ("choice_pair", "harm_act"):
        return cue.asked or " / " in cue.phrase  # a question, or the poll's own options
    if cue.name == "audience_decides":  # "you decide", "vote now"; not the noun "poll"
        return cue.weight >= WEIGHTS["audience_decides"]
    return cue.name == "reaction_vote"


def _language(cues: Sequence[Cue]) -> str | None:
    totals: dict[str, float] = {}
    for c in cues:
        if c.language != "zxx":
            totals[c.language] = totals.get(c.language, 0.0) + abs(c.weight)
    if not totals:
        return "zxx" if cues else None
    return max(totals, key=lambda k: totals[k])
