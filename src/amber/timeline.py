"""Judging one video against another from the frames that matched: shares and segments.

The input is what an index gives: pairs of times, a query frame's and the banked frame it
matched (within the distance threshold). From them:

- the **query share**: of the query's frames, those that matched some banked frame;
- the **entry share**: of the banked video's frames, those the query covers: a banked
  frame counts when a frame that matched lies within ``cover`` seconds of it (the
  query's sampling interval: the bank side is hashed more densely than the query side,
  so a query frame stands for the banked frames around it);
- **segments**: stretches of the query that play a stretch of the banked video in order
  (a clip inside a compilation), with the time ranges in both.

vPDQ's own comparison (``amber.signals.vpdq.match``) counts frames on both sides the same
way; the cover makes the entry share independent of how much denser the bank side is.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

#: Shortest stretch of a banked video that counts as a segment inside another video, and
#: the fewest frames matched in order within it (at one frame a second: three frames).
SEGMENT_SECONDS: Final = 2.0
SEGMENT_FRAMES: Final = 3
#: How far a segment's frames may stray from its time offset, and the longest gap between
#: its frames (seconds): a re-encode's sampling phase and frame rate differ.
SEGMENT_SLACK: Final = 2.0
#: The longest gap (seconds) between a segment's frames when no usable frame between them
#: failed to match (the frames between were too flat to hash: a fade, a dark stretch).
SEGMENT_MAX_GAP: Final = 10.0


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of the query that shows a stretch of the compared video: the times (in
    seconds, first and last matched frame) in each, and how many query frames matched."""

    query_start: float
    query_end: float
    compared_start: float
    compared_end: float
    frames: int

    @property
    def seconds(self) -> float:
        return self.query_end - self.query_start

    def to_json(self) -> dict[str, list[float]]:
        """``{"post": [start, end], "entry": [start, end]}`` in seconds (3 decimals)."""
        return {
            "post": [round(self.query_start, 3), round(self.query_end, 3)],
            "entry": [round(self.compared_start, 3), round(self.compared_end, 3)],
        }


def segments(
    pairs: Iterable[tuple[float, float]],
    *,
    min_seconds: float = SEGMENT_SECONDS,
    min_frames: int = SEGMENT_FRAMES,
    slack: float = SEGMENT_SLACK,
    unmatched: Iterable[float] | None = None,
    max_gap: float = SEGMENT_MAX_GAP,
) -> list[Segment]:
    """The segments that ``pairs`` of (query time, compared time) of matching frames make.

    A segment is a run of pairs whose offset (compared time minus query time) stays within
    ``slack`` seconds of the run's first, lasting at least ``min_seconds`` with at least
    ``min_frames`` query frames. Consecutive
    query frames of a run are at most ``slack`` seconds apart; when ``unmatched`` gives
    the times of the query's usable frames that matched nothing, a longer gap, up to
    ``max_gap``, does not break a run if none of those lies inside it (the frames between
    were unusable, not different). The offset absorbs where the clip sits in each video;
    ``slack`` absorbs a different sampling phase or frame rate. Segments come in query
    order; where two overlap in the query, the one with more frames is kept.
    """
    misses = sorted(set(unmatched)) if unmatched is not None else None

    def joins(last_q: float, tq: float) -> bool:
        gap = tq - last_q
        if 0 <= gap <= slack:
            return True
        if misses is None or not 0 <= gap <= max_gap:
            return False
        i = bisect.bisect_right(misses, last_q)
        return i == len(misses) or misses[i] >= tq  # no usable frame between missed

    runs: list[list[tuple[float, float]]] = []
    for tq, tc in sorted(set(pairs)):  # each pair joins the open run it continues, else starts one
        for run in runs:
            first_q, first_c = run[0]
            last_q = run[-1][0]
            if joins(last_q, tq) and abs((tc - tq) - (first_c - first_q)) <= slack:
                if tq != last_q:
                    run.append((tq, tc))
                break
        else:
            runs.append([(tq, tc)])
    found = [
        Segment(run[0][0], run[-1][0], min(p[1] for p in run), max(p[1] for p in run), len(run))
        for run in runs
        if run[-1][0] - run[0][0] >= min_seconds and len(run) >= min_frames
    ]
    kept: list[Segment] = []
    for seg in sorted(found, key=lambda s: (-s.frames, s.query_start)):
        if all(seg.query_end < k.query_start or seg.query_start > k.query_end for k in kept):
            kept.append(seg)
    return sorted(kept, key=lambda s: s.query_start)


def covered(times: Sequence[float], matched: Iterable[float], cover: float) -> int:
    """How many of ``times`` lie within ``cover`` seconds of one of ``matched``."""
    marks = sorted(set(matched))
    if not marks:
        return 0
    count = 0
    for t in times:
        i = bisect.bisect_left(marks, t)
        near = [marks[j] for j in (i - 1, i) if 0 <= j < len(marks)]
        if any(abs(m - t) <= cover for m in near):
            count += 1
    return count


def percent(part: int, whole: int) -> float:
    """``part`` of ``whole`` in percent (0 when ``whole`` is 0), to 0.1."""
    return round(100.0 * part / whole, 1) if whole else 0.0
