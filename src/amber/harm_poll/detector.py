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

from amber.errors import UserError
from amber.harm_poll.lexicon import CueClass, Role
from amber.harm_poll.matcher import (
    Index,
    Match,
    default_index,
    find_matches,
    language_scores,
    resolve,
)
from amber.harm_poll.model import DEFAULT_THRESHOLD, Assessment, Cue, Kind
from amber.harm_poll.structure import Evidence, Nearby, PostView, derive, read_post

#: Log-odds each cue adds at full strength (dampeners subtract).
WEIGHTS: dict[str, float] = {
    "harm_act": 2.0,
    "harm_done": 2.0,
    "death_word": 1.2,
    "spare_act": 0.8,
    "life_word": 0.5,
    "choice_pair": 2.5,
    "target_person": 1.0,
    "captive": 1.0,
    "audience_decides": 1.6,
    "deadline": 1.0,
    "outcome": 2.5,
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
#: Share of a humour dampener (lol, 😂) left when the post is a clear harm vote: a
#: choice pair, a victim and the audience asked. Hyperbole (roommate, my brother) is
#: its own dampener and keeps its full weight.
CLEAR_VOTE_HUMOR = 0.3
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
    view = read_post(
        _clip(text or "", MAX_TEXT),
        None if question is None else _clip(question, MAX_PART),
        tuple(_clip(o, MAX_PART) for o in list(options)[:MAX_OPTIONS] if o is not None),
    )
    matches = _matches(view, index)
    evidence = derive(view, matches, index)
    cues = [_cue(view, e) for e in evidence]
    positives = sorted(
        (c for c in cues if c.weight > 0), key=lambda c: (-c.weight, c.name, c.phrase)
    )
    dampeners = sorted((c for c in cues if c.weight < 0), key=lambda c: (c.weight, c.name))
    z, kind = _log_odds(positives, dampeners)
    score = round(1.0 / (1.0 + math.exp(-z)), 4)
    return Assessment(
        score=score,
        kind=kind if score >= threshold else None,
        language=_language(positives) or _language(dampeners),
        cues=tuple(_dedupe(positives)),
        dampeners=tuple(_dedupe(dampeners)),
        threshold=threshold,
    )


def _clip(text: str, limit: int) -> str:
    """Long text keeps its head and its tail (where a poll's call to vote sits)."""
    if len(text) <= limit:
        return text
    head = limit * 4 // 5
    return text[:head] + "\n" + text[len(text) - (limit - head) :]


def _matches(view: PostView, index: Index) -> list[Match]:
    found = find_matches(index, view.content, view.segments)
    if not found:
        return []
    scores = language_scores(index, view.content, found)
    kept = resolve(found, index, view.content, scores)
    return _drop_negated(kept, view)


def _drop_negated(matches: list[Match], view: PostView) -> list[Match]:
    """Dampeners right after (or, for some languages, before) a negation do not count."""
    negations = Nearby(m for m in matches if m.cue is CueClass.negation)
    if not negations.items:
        return matches
    segs = view.segments
    out: list[Match] = []
    for m in matches:
        if m.cue.role is Role.dampener and any(
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
    return Cue(name=e.name, phrase=phrase, language=e.language, weight=weight)


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
        {(c.phrase, c.name): abs(c.weight) for c in cues if c.name in names}.values(),
        reverse=True,
    )
    if not weights:
        return 0.0
    return min(weights[0] + FURTHER * sum(weights[1:]), 1.5 * weights[0])


def _log_odds(positives: Sequence[Cue], dampeners: Sequence[Cue]) -> tuple[float, Kind]:
    harm = _strength(positives, "harm_act", "harm_done", "death_word")
    if any(c.name == "choice_pair" for c in positives):
        # "live or die", "yaşasın mı ölsün mü": the pair itself names death
        harm = max(harm, WEIGHTS["death_word"])
    victim = _strength(positives, "target_person", "captive")
    if not harm and victim and any(c.name == "life_word" for c in positives):
        # "should we let this infidel live?": sparing a life implies taking it
        harm = IMPLIED_HARM
    spare = _strength(positives, "spare_act", "life_word")
    pair = _strength(positives, "choice_pair")
    reaction = _strength(positives, "reaction_vote")
    decision = (
        pair
        + reaction
        + _strength(positives, "audience_decides")
        + _strength(positives, "poll_structure")
    )
    deadline = _strength(positives, "deadline")
    outcome = _strength(positives, "outcome")

    vote = BIAS + harm + spare + victim + decision + deadline
    if decision == 0:
        vote = min(vote, NO_DECISION_CAP)
    if victim == 0 and pair == 0 and reaction == 0:
        vote = min(vote, NO_VICTIM_CAP)
    if any(c.name == "harm_done" for c in positives):
        # "you voted ... he was executed": a vote named next to a harm done announces it
        outcome = max(outcome, _strength(positives, "audience_decides"))
    if outcome and not any(c.name in ("harm_act", "harm_done") for c in positives):
        # "the majority chose death": death named as the outcome of a vote is the harm
        harm = max(harm, CHOSEN_DEATH * _strength(positives, "death_word"))
    announcement = BIAS + harm + outcome + victim + 0.5 * deadline if outcome else -math.inf
    kind = Kind.announcement if announcement >= vote else Kind.vote
    z = max(vote, announcement)
    if harm == 0:
        z = min(z, NO_HARM_CAP)

    clear_vote = pair > 0 and victim > 0 and decision > pair
    damp = sorted(
        (
            abs(c.weight) * (CLEAR_VOTE_HUMOR if clear_vote and c.name == "humor" else 1.0)
            for c in dampeners
        ),
        reverse=True,
    )
    if damp:
        z -= min(damp[0] + FURTHER_DAMPENER * sum(damp[1:]), DAMPENER_CAP)
    return z, kind


def _language(cues: Sequence[Cue]) -> str | None:
    totals: dict[str, float] = {}
    for c in cues:
        if c.language != "zxx":
            totals[c.language] = totals.get(c.language, 0.0) + abs(c.weight)
    if not totals:
        return "zxx" if cues else None
    return max(totals, key=lambda k: totals[k])
