"""Reading a post's structure: segments, and the cues that come from how words combine.

A post is read as segments (its text, the poll question, each option) normalised
together and kept apart: no phrase runs from one into the next. From the lexicon
matches this module derives the cues no single word shows:

- ``target_person``: a pronoun next to a harm or spare act (``kill him``, ``tuez-le``),
  or a pronoun affix on the verb itself (``اقتلوه``, ``بکشیمش``, ``mátenlo``);
- ``choice_pair``: a harm act set against a spare act as alternatives, in the text
  (``Kill him or let him go``, ``execute / release``) or across a poll's options;
- ``reaction_vote``: a reaction bound to a fate (``👎 = he dies``, ``Like = hang``);
- ``poll_structure``: a poll's options, or option lines written in the text.

Each finding is ``Evidence``: a cue name, its language, a weight factor (1 unless
linked or weak) and the normalised spans that the detector quotes.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from amber.harm_poll.language import related
from amber.harm_poll.lexicon import FRAMES, CueClass, Effect
from amber.harm_poll.matcher import Hit, Index, Pattern
from amber.harm_poll.normalize import Normalised, Term, TermKind, normalise, tokenize


class SegmentKind(StrEnum):
    """Where a segment of a post comes from."""

    text = "text"
    question = "question"
    option = "option"


@dataclass(frozen=True, slots=True)
class PostView:
    """A post normalised once: all tokens, the content tokens and their segments."""

    norm: Normalised
    tokens: tuple[Term, ...]
    content: tuple[Term, ...]
    position: tuple[int, ...]
    segments: tuple[int, ...]
    kinds: tuple[SegmentKind, ...]
    #: normalised character ranges inside quotation marks
    quotes: tuple[tuple[int, int], ...] = ()

    def quoted(self, spans: Sequence[tuple[int, int]]) -> bool:
        """Do all of ``spans`` lie inside quotation marks?"""
        return bool(self.quotes) and all(
            any(a <= start and end <= b for a, b in self.quotes) for start, end in spans
        )

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Normalised character span of content tokens ``start..end``."""
        return self.content[start].start, self.content[end - 1].end

    def between(self, a: int, b: int) -> tuple[Term, ...]:
        """All tokens (punctuation included) strictly between content tokens a < b."""
        return self.tokens[self.position[a] + 1 : self.position[b]]


_SEPARATOR = "\n\n"


def read_post(text: str, question: str | None, options: Sequence[str]) -> PostView:
    """Normalise and tokenise the parts of a post, remembering each token's segment."""
    parts: list[tuple[SegmentKind, str]] = [(SegmentKind.text, text)]
    if question is not None or options:
        parts.append((SegmentKind.question, question or ""))
        parts.extend((SegmentKind.option, o) for o in options)
    source = _SEPARATOR.join(p for _, p in parts)
    starts: list[int] = []
    offset = 0
    for _, part in parts:
        starts.append(offset)
        offset += len(part) + len(_SEPARATOR)
    norm = normalise(source)
    tokens = tuple(tokenize(norm))
    content: list[Term] = []
    position: list[int] = []
    segments: list[int] = []
    for i, tok in enumerate(tokens):
        if tok.kind is TermKind.punct:
            continue
        content.append(tok)
        position.append(i)
        segments.append(bisect.bisect_right(starts, norm.starts[tok.start]) - 1)
    return PostView(
        norm,
        tokens,
        tuple(content),
        tuple(position),
        tuple(segments),
        tuple(k for k, _ in parts),
        _quotes(norm.text),
    )


#: Opening and closing quotation marks left after normalisation (« » “ ” are ``"``).
_QUOTE = re.compile(r""""[^"\n]{1,}?"|(?<!\w)'[^'\n]{1,}?'(?!\w)|「[^」]{1,}」|『[^』]{1,}』""")


#: Words from which a quoted string is a quotation; shorter ones are answers
#: ("comment 'RIVER' or 'NO'").
QUOTATION_WORDS = 3


def _quotes(text: str) -> tuple[tuple[int, int], ...]:
    """Ranges of text between quotation marks, within a line, of three words or more."""
    return tuple(
        (m.start(), m.end())
        for m in _QUOTE.finditer(text)
        if len(m.group()[1:-1].split()) >= QUOTATION_WORDS
    )


def _answers(text: str) -> list[tuple[int, int]]:
    """Short quoted strings (one or two words): answers offered to the audience."""
    return [
        (m.start() + 1, m.end() - 1)
        for m in _QUOTE.finditer(text)
        if 0 < len(m.group()[1:-1].split()) < QUOTATION_WORDS
    ]


@dataclass(frozen=True, slots=True)
class Evidence:
    """A cue found in a post, before it is weighed and quoted."""

    name: str
    language: str
    factor: float
    spans: tuple[tuple[int, int], ...]
    quoted: bool = False
    #: a choice put as a question ("kill him or let him go?"), not told
    asked: bool = False


_HARM = frozenset({CueClass.harm_act, CueClass.harm_done, CueClass.euphemism, CueClass.death_word})
_SPARE = frozenset({CueClass.spare_act, CueClass.life_word})
_FATE = _HARM | _SPARE
_VICTIMS = frozenset(
    {CueClass.captive.value, CueClass.target_person.value, CueClass.target_named.value}
)
_LINK_PUNCT = frozenset({"=", ":", "→", "->", "=>", "-", ">"})
_PAIR_PUNCT = frozenset({"/", "|", "\\"})
#: Options written inline: "A) stoning B) exile", "1) kill 2) free".
_INLINE = re.compile(r"(?:^|\s)([a-d1-4]\))\s*[^\s()]+")
_BULLET = re.compile(
    r"^\s*(?:\d{1,2}\s*[).:-]|[a-d]\s*\)|[-•*▪►✅❌]|[\U0001f000-\U0001faff\u2600-\u27bf])"
)

#: Within how many content tokens a pronoun is read as the object of an act.
PRONOUN_WINDOW = 2
#: Within how many content tokens a named target or captive counts as the victim.
TARGET_WINDOW = 6
#: How far apart a harm act and a spare act may be to form a choice.
PAIR_WINDOW = 12
#: How far a reaction may be from the fate it stands for.
REACTION_WINDOW = 3
#: Weight factor of two or more reactions offered as answers, bound to no fate.
REACTION_POLL = 0.6
#: Weight factor of a victim linked to a harm act, relative to one found anywhere.
LINKED = 1.6
#: Weight factor of a poll whose question or options name a harm act.
HARM_POLL = 1.5
#: Within how many tokens after a frame (news, condemnation) a call to vote is reported.
REPORTED_WINDOW = 3
#: Weight factor of a choice implied by answers that set a life against unknown words.
IMPLIED_PAIR = 0.6
#: Lexicon weight from which a spare act is firm enough to imply the other answer's harm;
#: in a poll about a captive or a named target, a weaker one will do ("He goes home").
FIRM_SPARE = 0.8
WEAK_SPARE = 0.5
#: Weight factor of two or more answers offered in quotes, read as a poll.
QUOTED_POLL = 0.8
#: Weight factor of a percentage in a post with a harm act, read as a vote's outcome.
PERCENT_OUTCOME = 0.4
#: Within how many tokens "kill or die" is a slogan.
SLOGAN_WINDOW = 4
#: Weight factor of such a slogan, as an idiom (twice an idiom word).
SLOGAN = 2.0
#: Most reaction votes read from one post.
MAX_REACTIONS = 4
#: Within how many content tokens after a negation a spare act or life word is denied
#: ("no mercy", "не жить"), and the weight factor of the harm it then stands for.
NEGATED_WINDOW = 2
NEGATED_MERCY = 0.8


class Nearby:
    """Matches sorted by position, to find those near a token without scanning all."""

    def __init__(self, matches: Iterable[Hit]) -> None:
        self.items = sorted(matches, key=lambda m: m.start)
        self.starts = [m.start for m in self.items]
        self.longest = max((m.end - m.start for m in self.items), default=1)

    def around(self, lo: int, hi: int) -> list[Hit]:
        """Matches that overlap or start within content tokens ``lo..hi``."""
        i = bisect.bisect_left(self.starts, lo - self.longest)
        j = bisect.bisect_right(self.starts, hi)
        return self.items[i:j]

    def near(self, m: Hit, window: int, segs: Sequence[int]) -> Iterator[Hit]:
        """Matches in ``m``'s segment less than ``window`` tokens away from it."""
        for o in self.around(m.start - window, m.end + window):
            if segs[o.start] == segs[m.start] and max(o.start - m.end, m.start - o.end) < window:
                yield o

    def between(self, first: Hit, second: Hit) -> bool:
        """Is there a match lying entirely between ``first`` and ``second``?"""
        return any(
            first.end <= o.start and o.end <= second.start
            for o in self.around(first.end, second.start)
        )


def derive(view: PostView, matches: Sequence[Hit], index: Index) -> list[Evidence]:
    """Evidence from the matches themselves and from how they combine."""
    out: list[Evidence] = []
    segs = view.segments
    matches = _deny_mercy(view, matches)
    fates = Nearby(m for m in matches if m.cue in _FATE)
    harms = Nearby(m for m in fates.items if m.cue in _HARM)
    frames = Nearby(m for m in matches if m.cue in FRAMES)
    asking = False
    for m in matches:
        if m.cue.effect is Effect.helper:
            continue
        factor = m.pattern.weight
        if m.cue in (CueClass.target_person, CueClass.captive, CueClass.target_named) and any(
            harms.near(m, TARGET_WINDOW, segs)
        ):
            factor *= LINKED
        # "researchers said the group asked followers to vote": reported, not asked
        reported = m.cue is CueClass.audience_decides and any(
            segs[f.start] == segs[m.start] and 0 <= m.start - f.end < REPORTED_WINDOW
            for f in frames.around(m.start - REPORTED_WINDOW, m.start)
        )
        span = (view.span(m.start, m.end),)
        asked = m.cue is CueClass.harm_act and _asked(view, m.end - 1)  # "Shoot him?"
        out.append(Evidence(m.cue.value, m.language, factor, span, quoted=reported, asked=asked))
        if m.cue is CueClass.audience_decides and not reported:
            asking = asking or not view.quoted(span)
    out.extend(_affix_targets(view, fates.items, index))
    out.extend(_named_targets(view, harms.items, matches))
    out.extend(_pronoun_targets(view, matches, fates))
    out.extend(_pairs(view, matches, fates))
    # a person is the subject: a captive or target word, or a pronoun bound to a fate
    # ("hand him to the police")
    victims = any(e.name in _VICTIMS for e in out)
    out.extend(_option_pairs(view, fates.items, victim=victims))
    out.extend(_reactions(view, matches, fates, harms, victim=victims))
    if asking:  # answers in quotes only where the audience is asked, not in a report
        out.extend(_quoted_answers(view, matches, fates.items, harms, victim=victims))
    done = any(m.cue is CueClass.finality for m in matches)
    out.extend(_percentages(view, harms, done=done))
    out.extend(_slogans(view, matches, fates))
    harm_in_poll = any(view.kinds[segs[m.start]] is not SegmentKind.text for m in harms.items)
    out.extend(_poll(view, harm_in_poll))
    return out


def _deny_mercy(view: PostView, matches: Sequence[Hit]) -> list[Hit]:
    """A spare act or life word right after a negation of its own language (or kin), with
    no mark between them, is mercy denied: "no mercy for the traitor", "he must not live"
    stand for the harm."""
    # a word that is also "or" (Arabic "ولا") joins two answers rather than denying one
    joins = {(m.start, m.end) for m in matches if m.cue is CueClass.alternative}
    negations = Nearby(
        m for m in matches if m.cue is CueClass.negation and (m.start, m.end) not in joins
    )
    if not negations.items:
        return list(matches)
    out: list[Hit] = []
    for m in matches:
        denied = None
        if m.cue in _SPARE:
            for n in negations.around(m.start - NEGATED_WINDOW, m.start):
                if (
                    related(n.language, m.language)
                    and view.segments[n.start] == view.segments[m.start]
                    and 0 <= m.start - n.end < NEGATED_WINDOW
                    and not any(t.kind is TermKind.punct for t in view.between(n.end - 1, m.start))
                ):
                    denied = n
        if denied is None:
            out.append(m)
            continue
        pattern = Pattern(
            m.language,
            CueClass.harm_act,
            NEGATED_MERCY * m.pattern.weight,
            (),
            f"not {m.pattern.source}",
        )
        out.append(Hit(pattern, denied.start, m.end, m.form, m.remainder))
    return out


def _affix_targets(view: PostView, fates: Sequence[Hit], index: Index) -> list[Evidence]:
    out: list[Evidence] = []
    for m in fates:
        if m.cue not in (CueClass.harm_act, CueClass.harm_done, CueClass.spare_act):
            continue
        suffixes = index.target_suffixes.get(m.language, ())
        prefixes = index.target_prefixes.get(m.language, ())
        if (m.remainder and any(m.remainder.endswith(s) for s in suffixes)) or any(
            m.form.startswith(p) for p in prefixes
        ):
            span = view.span(m.start, m.start + 1)
            out.append(Evidence(CueClass.target_person.value, m.language, LINKED, (span,)))
    return out


#: How many tokens after a harm act an @handle or a name counts as its target.
NAME_WINDOW = 3
#: Weight factor of a capitalised word read as the name of a harm act's target.
NAME_FACTOR = 0.6


def _named_targets(view: PostView, harms: Sequence[Hit], matches: Sequence[Hit]) -> list[Evidence]:
    """An @handle or a capitalised name right after a harm act: a named person as the
    target (``kill @reporter_x``, ``burn Rahimi's house``), present or not."""
    covered = {j for m in matches for j in range(m.start, m.end)}
    out: list[Evidence] = []
    for h in harms:
        if h.cue is CueClass.death_word:
            continue
        seg = view.segments[h.start]
        for j in range(h.end, min(h.end + NAME_WINDOW, len(view.content))):
            if view.segments[j] != seg or j in covered:
                continue
            tok = view.content[j]
            if tok.kind is not TermKind.word:
                continue
            before = view.tokens[view.position[j] - 1] if view.position[j] > 0 else None
            source = view.norm.original(tok.start, tok.end)
            if before is not None and before.text == "@" and before.end == tok.start:
                span = (before.start, tok.end)
                out.append(Evidence(CueClass.target_named.value, "zxx", LINKED, (span,)))
                return out
            if (
                j == h.end
                and h.language != "de"
                and source[:1].isupper()
                and not source.isupper()
                and len(source) > 2
            ):
                span = view.span(j, j + 1)
                out.append(Evidence(CueClass.target_named.value, "zxx", NAME_FACTOR, (span,)))
                return out
    return out


def _pronoun_targets(view: PostView, matches: Sequence[Hit], fates: Nearby) -> list[Evidence]:
    """A pronoun next to a fate of its own language (or kin, or an emoji) is its object:
    Czech "mu" beside a Kinyarwanda verb is not."""
    out: list[Evidence] = []
    for m in matches:
        if m.cue is CueClass.pronoun and any(
            f.language == "zxx" or related(m.language, f.language)
            for f in fates.near(m, PRONOUN_WINDOW, view.segments)
        ):
            span = view.span(m.start, m.end)
            out.append(Evidence(CueClass.target_person.value, m.language, LINKED, (span,)))
    return out


def _pairs(view: PostView, matches: Sequence[Hit], fates: Nearby) -> list[Evidence]:
    """A harm act and a spare act joined by 'or' (or a slash) in one segment."""
    alternatives = Nearby(m for m in matches if m.cue is CueClass.alternative)
    for h in fates.items:
        if h.cue not in _HARM:
            continue
        for s in fates.near(h, PAIR_WINDOW + 1, view.segments):
            if s.cue not in _SPARE:
                continue
            first, second = (h, s) if h.start < s.start else (s, h)
            if second.start < first.end:
                continue
            joined = alternatives.between(first, second) or any(
                t.text in _PAIR_PUNCT for t in view.between(first.end - 1, second.start)
            )
            if joined:
                span = view.span(first.start, second.end)
                asked = _asked(view, second.end - 1)
                return [Evidence(CueClass.choice_pair.value, h.language, 1.0, (span,), asked=asked)]
    return []


#: How many tokens after a choice its question mark may come.
ASKED_WINDOW = 4


def _asked(view: PostView, last: int) -> bool:
    """Is the first sentence mark after content token ``last`` a question mark?"""
    start = view.position[last] + 1
    for tok in view.tokens[start : start + ASKED_WINDOW * 2]:
        if tok.kind is TermKind.punct and tok.text in "?.!\n":
            return tok.text == "?"
    return False


def _option_pairs(view: PostView, fates: Sequence[Hit], *, victim: bool) -> list[Evidence]:
    """A poll whose options set a harm act against a spare act; or, in a post about a
    captive or a target, a life or a firm sparing against an option of unknown words
    ("отпускаем" / "валим"): an implied choice."""
    harm_opts: dict[int, Hit] = {}
    spare_opts: dict[int, Hit] = {}
    for m in fates:
        seg = view.segments[m.start]
        if view.kinds[seg] is not SegmentKind.option:
            continue
        (harm_opts if m.cue in _HARM else spare_opts).setdefault(seg, m)
    for seg_h, h in harm_opts.items():
        for seg_s, s in spare_opts.items():
            if seg_s != seg_h:
                spans = (_segment_span(view, seg_h), _segment_span(view, seg_s))
                language = h.language if h.language != "zxx" else s.language
                return [Evidence(CueClass.choice_pair.value, language, 1.2, spans)]
    options = [i for i, k in enumerate(view.kinds) if k is SegmentKind.option]
    present = set(view.segments)
    unknown = [seg for seg in options if seg in present and seg not in spare_opts]
    if victim and not harm_opts and len(options) == 2 and len(unknown) == 1:
        for seg_s, s in spare_opts.items():
            if s.cue is CueClass.life_word or s.pattern.weight >= WEAK_SPARE:
                spans = (_segment_span(view, unknown[0]), _segment_span(view, seg_s))
                return [Evidence(CueClass.choice_pair.value, s.language, IMPLIED_PAIR, spans)]
    return []


def _segment_span(view: PostView, seg: int) -> tuple[int, int]:
    first = bisect.bisect_left(view.segments, seg)
    last = bisect.bisect_right(view.segments, seg)
    return view.span(first, last)


def _number_markers(view: PostView, matches: Sequence[Hit]) -> list[Hit]:
    """Numbers offered as answers: ``1 = death, 2 = mercy``, ``comment 1 for kill``: a
    digit from 1 to 9 followed by ``=``, ``:``, ``→`` or a link word."""
    links = {m.start for m in matches if m.cue is CueClass.link}
    out: list[Hit] = []
    for j, tok in enumerate(view.content):
        if tok.kind is not TermKind.number or len(tok.text) != 1 or tok.text == "0":
            continue
        after = (
            view.tokens[view.position[j] + 1] if view.position[j] + 1 < len(view.tokens) else None
        )
        if (after is not None and after.text in _LINK_PUNCT) or (j + 1) in links:
            out.append(Hit(_NUMBER_MARKER, j, j + 1, tok.text, ""))
    return out


#: A number offered as an answer, read as a reaction (``1 = death``).
_NUMBER_MARKER = Pattern("zxx", CueClass.reaction, 1.0, (), "#")


def _reactions(
    view: PostView, matches: Sequence[Hit], fates: Nearby, harms: Nearby, *, victim: bool
) -> list[Evidence]:
    """A reaction (👍, like, ✅, or a number offered as an answer) bound to a fate (he
    dies, free him) by '=' or nearness.

    Two answers, one bound to a life or a firm sparing ("👍 = he lives") and the other to
    words amber does not know ("👎 = into the river"), set life against something else:
    an implied choice, weaker than a named one. In a post about a captive or a target a
    weaker sparing will do ("👍 = hand him to the police, 🔥 = we settle it here").
    """
    out: list[Evidence] = []
    links = Nearby(m for m in matches if m.cue is CueClass.link)
    reactions = sorted(
        [m for m in matches if m.cue is CueClass.reaction] + _number_markers(view, matches),
        key=lambda m: m.start,
    )
    bound_to: dict[bool, Hit] = {}
    unbound: list[Hit] = []
    # one reaction next to a fate is hype ("🔥 kill or be killed"); a vote offers two
    several = len({r.pattern.source for r in reactions}) >= 2
    link_starts = {m.start for m in links.items}
    for r in reactions:
        # "👎 = ...", "1: ...", or a link word after it: "reply YES if ...", "like for ..."
        answers = (
            r.pattern is _NUMBER_MARKER
            or _offers_answer(view, r)
            or (r.end in link_starts and view.segments[r.end] == view.segments[r.start])
        )
        near = sorted(
            fates.near(r, REACTION_WINDOW + 1, view.segments),
            key=lambda f: (f.cue not in _HARM, abs(f.start - r.start)),
        )
        if answers:  # "👎 = into the river": its answer is what follows, nearest first
            near = sorted((f for f in near if f.start >= r.end), key=lambda f: f.start)
        found = False
        for f in near:
            first, second = (r, f) if r.start < f.start else (f, r)
            gap = second.start - first.end
            if gap < 0:
                continue
            bound = (
                (gap <= 1 and several)
                or any(t.text in _LINK_PUNCT for t in view.between(first.end - 1, second.start))
                or links.between(first, second)
            )
            if bound:
                span = view.span(first.start, second.end)
                factor = 1.0 if f.cue in _HARM else 0.5
                out.append(Evidence("reaction_vote", f.language, factor, (span,)))
                bound_to.setdefault(f.cue in _HARM, f)
                found = True
                break
        if not found and answers:
            unbound.append(r)
        if len(out) >= MAX_REACTIONS:
            break
    if len(bound_to) == 2:
        # 👍 = he lives, 👎 = he dies: the reactions set the two fates against each other
        h, s = bound_to[True], bound_to[False]
        span = view.span(min(h.start, s.start), max(h.end, s.end))
        out.append(Evidence(CueClass.choice_pair.value, h.language, 1.0, (span,)))
    elif False in bound_to and unbound:
        life = bound_to[False]
        firm = WEAK_SPARE if victim else FIRM_SPARE
        if life.cue is CueClass.life_word or life.pattern.weight >= firm:
            other = unbound[0]
            span = view.span(min(life.start, other.start), max(life.end, other.end))
            out.append(Evidence(CueClass.choice_pair.value, life.language, IMPLIED_PAIR, (span,)))
    kinds = {r.pattern.source for r in reactions}
    if not out and harms.items and (len(kinds) >= 2 or unbound):
        # "Should he die? 👍 yes 👎 no", "Like = yes, 500 likes and it happens": reactions
        # offered as the answers
        chosen = unbound or reactions
        spans = tuple(view.span(r.start, r.end) for r in chosen[:MAX_REACTIONS])
        out.append(Evidence("reaction_vote", "zxx", REACTION_POLL, spans))
    return out


#: Most words in one answer written in capitals ("SHOOT or LET GO").
CAPS_ANSWER_WORDS = 3


def _caps_answers(view: PostView, matches: Sequence[Hit]) -> list[tuple[int, int]]:
    """Answers written in capitals and set against each other: "write SHOOT or RELEASE"."""
    alternatives = {
        j for m in matches if m.cue is CueClass.alternative for j in range(m.start, m.end)
    }
    runs: list[tuple[int, int]] = []  # content token ranges
    start = None
    for j, tok in enumerate(view.content):
        original = view.norm.original(tok.start, tok.end)
        caps = (
            tok.kind is TermKind.word
            and j not in alternatives
            and len(original) >= 2
            and original.isupper()
        )
        same = start is not None and view.segments[j] == view.segments[start]
        if caps and (start is None or not same):
            if start is not None:
                runs.append((start, j))
            start = j
        elif not caps and start is not None:
            runs.append((start, j))
            start = None
    if start is not None:
        runs.append((start, len(view.content)))
    short = [r for r in runs if r[1] - r[0] <= CAPS_ANSWER_WORDS]
    out: list[tuple[int, int]] = []
    for (a, b), (c, d) in itertools.pairwise(short):
        between = range(b, c)
        if 0 < len(between) <= 2 and all(j in alternatives for j in between):
            for lo, hi in ((a, b), (c, d)):
                span = view.span(lo, hi)
                if span not in out:
                    out.append(span)
    return out


def _quoted_answers(
    view: PostView,
    matches: Sequence[Hit],
    fates: Sequence[Hit],
    harms: Nearby,
    *,
    victim: bool,
) -> list[Evidence]:
    """Answers offered in quotes or capitals ("comment 'RIVER' or 'NO'", "write SHOOT or
    RELEASE"): two or more are a poll written in words; with a harm act in the post, one
    answer that spares and another of unknown words set a life against something else, as
    poll options do."""
    answers = _answers(view.norm.text) + _caps_answers(view, matches)
    if len(answers) < 2 or not harms.items:
        return []
    out = [Evidence(CueClass.poll_structure.value, "zxx", QUOTED_POLL, tuple(answers[:4]))]
    spans = [(view.content[m.start].start, view.content[m.end - 1].end) for m in fates]
    sparing = [
        (a, b)
        for a, b in answers
        if any(
            a <= x and y <= b and m.cue in _SPARE for (x, y), m in zip(spans, fates, strict=True)
        )
    ]
    other = [span for span in answers if span not in sparing]
    if victim and sparing and other:
        out.append(
            Evidence(CueClass.choice_pair.value, "zxx", IMPLIED_PAIR, (other[0], sparing[0]))
        )
    return out


_PERCENT = re.compile(r"\d{1,3}(?:[.,]\d+)?\s?%")


def _percentages(view: PostView, harms: Nearby, *, done: bool) -> list[Evidence]:
    """A share of votes ("80% said 'bury him'") in a post with a harm act, or with a word
    of the deed done ("91% chose. It is done."): a vote's standing or result, in any
    language."""
    if not harms.items and not done:
        return []
    found = _PERCENT.search(view.norm.text)
    if found is None:
        return []
    return [Evidence(CueClass.outcome.value, "zxx", PERCENT_OUTCOME, (found.span(),))]


def _slogans(view: PostView, matches: Sequence[Hit], fates: Nearby) -> list[Evidence]:
    """ "Kill or be killed", "matar ou morrer", "ya öldür ya öl": a harm set against the
    speaker's own death is a rallying cry, not a choice about a captive."""
    alternatives = Nearby(m for m in matches if m.cue is CueClass.alternative)
    for h in fates.items:
        if h.cue is not CueClass.harm_act:
            continue
        for d in fates.near(h, SLOGAN_WINDOW, view.segments):
            if d.start <= h.start or d.cue not in (CueClass.death_word, CueClass.harm_done):
                continue
            if alternatives.between(h, d):
                span = view.span(h.start, d.end)
                return [Evidence(CueClass.idiom.value, h.language, SLOGAN, (span,))]
    return []


def _offers_answer(view: PostView, r: Hit) -> bool:
    """Is reaction ``r`` followed by ``=``, ``:`` or ``→`` and a word (an answer)?"""
    i = view.position[r.end - 1] + 1
    if i >= len(view.tokens) or view.tokens[i].text not in _LINK_PUNCT:
        return False
    return r.end < len(view.content) and view.segments[r.end] == view.segments[r.start]


def _poll(view: PostView, harm_in_poll: bool) -> list[Evidence]:
    """The poll itself (stronger when its question or options name a harm act), or
    option lines written in the text."""
    option_segs = {i for i, k in enumerate(view.kinds) if k is SegmentKind.option}
    present = sorted(set(view.segments) & option_segs)
    if len(present) >= 2:
        spans = tuple(_segment_span(view, seg) for seg in present)
        factor = HARM_POLL if harm_in_poll else 1.0
        return [Evidence(CueClass.poll_structure.value, "zxx", factor, spans)]
    bulleted: list[tuple[int, int]] = []
    offset = 0
    for line in view.norm.text.split("\n"):
        if _BULLET.match(line) and line.strip():
            lead = len(line) - len(line.lstrip())
            bulleted.append((offset + lead, offset + len(line)))
        offset += len(line) + 1
    if len(bulleted) >= 2:
        return [Evidence(CueClass.poll_structure.value, "zxx", 0.8, tuple(bulleted))]
    inline = list(_INLINE.finditer(view.norm.text))
    if len(inline) >= 2:
        spans = tuple((m.start(1), m.end()) for m in inline)
        return [Evidence(CueClass.poll_structure.value, "zxx", 0.8, spans)]
    return []
