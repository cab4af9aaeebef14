"""Segments and shares from matched frame times (amber.timeline), on hand-made times."""

from __future__ import annotations

from amber import timeline


def test_a_clip_played_in_order_is_one_segment_with_its_times_in_both() -> None:
    pairs = [(6.0 + t, 3.0 + t) for t in range(5)]  # 6-10 s of the post plays 3-7 s

    (segment,) = timeline.segments(pairs)

    assert (segment.query_start, segment.query_end) == (6.0, 10.0)
    assert (segment.compared_start, segment.compared_end) == (3.0, 7.0)
    assert segment.frames == 5 and segment.to_json() == {"post": [6.0, 10.0], "entry": [3.0, 7.0]}


def test_frames_out_of_order_or_too_few_make_no_segment() -> None:
    shuffled = [(0.0, 5.0), (1.0, 1.0), (2.0, 9.0), (3.0, 2.0)]  # offsets all over the place
    assert timeline.segments(shuffled) == []
    assert timeline.segments([(0.0, 0.0), (1.0, 1.0)]) == []  # 1 s: under SEGMENT_SECONDS


def test_a_gap_breaks_a_run_only_where_usable_frames_failed_to_match() -> None:
    pairs = [(0.0, 0.0), (1.0, 1.0), (6.0, 6.0), (7.0, 7.0)]  # nothing matched 2-5 s

    assert timeline.segments(pairs) == []  # without knowing why: two 1 s runs
    flat = timeline.segments(pairs, unmatched=[])  # the frames between were too flat to hash
    different = timeline.segments(pairs, unmatched=[3.0])  # a usable frame at 3 s differed

    assert [(s.query_start, s.query_end) for s in flat] == [(0.0, 7.0)]
    assert different == []
    assert timeline.segments([(0.0, 0.0), (20.0, 20.0)], unmatched=[]) == []  # over max_gap


def test_coverage_counts_times_near_a_matched_one() -> None:
    entry = [i / 4 for i in range(16)]  # 4 s banked at 4 frames a second

    assert timeline.covered(entry, [0.0, 1.0], cover=0.75) == 8  # 0 to 1.75 s
    assert timeline.covered(entry, [], cover=0.75) == 0
    assert timeline.percent(8, 16) == 50.0 and timeline.percent(1, 0) == 0.0
