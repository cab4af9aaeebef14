"""harm_poll: recognise a vote on a person's life, or the announcement of its outcome.

    >>> from amber.harm_poll import assess
    >>> a = assess("Kill him or let him go? You have one hour to vote.")
    >>> a.fired, a.kind
    (True, <Kind.vote: 'vote'>)

``assess`` reads a post's text, poll question and options in ten languages (English,
Arabic, Persian, Sorani Kurdish, Turkish, French, Spanish, Russian, Urdu, German),
normalised against leetspeak, spacing, diacritics, letter variants and invisible
characters, and weighs cue classes: harm act, victim, decision by the audience,
deadline, captive wording, outcome, and the frames that make such words harmless
(news, fiction, sport, idiom, animals, debate, history, petition). Every assessment
explains itself. Pure Python; its only I/O is the compiled lexicons it keeps in the user
cache (``compiled`` module). ``docs/harm-poll.md`` describes it in full.
"""

from amber.harm_poll.detector import assess
from amber.harm_poll.model import DEFAULT_THRESHOLD, Assessment, Cue, Kind

__all__ = ["DEFAULT_THRESHOLD", "Assessment", "Cue", "Kind", "assess"]
