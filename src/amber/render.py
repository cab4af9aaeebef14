"""Scan results and decisions as people read them: rich tables, one short line per reason.

Both faces that show results to a person at a terminal (the command line and ``amber
demo``) use these; the full explanation of a reason stays in ``--format jsonl`` and in
``amber harm-poll explain``. Only rich is imported here, so rendering costs nothing at
start-up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from amber.decisions import Decision
    from amber.engine import ScanResult
    from amber.explain import Explanation

#: How each verdict is shown.
VERDICT_STYLE = {
    "allow": "green",
    "review": "yellow",
    "restrict": "bold dark_orange",
    "remove": "bold red",
}
SEPARATOR = " · "
#: Longest free-text part (a detail) shown in a reason's line.
DETAIL_WIDTH = 60
_VIA = re.compile(r" via (\S+) -> ([^\s;]+)")


def verdict_text(verdict: str) -> Text:
    """The verdict in its colour."""
    return Text(verdict, style=VERDICT_STYLE.get(verdict, ""))


def describe_reason(reason: Mapping[str, Any]) -> str:
    """One short line for a person, e.g.
    ``pdq · bank terror-photos (execution) · distance 4 · view mirror``.

    A bank match names the bank and its label, the distance (``exact`` for a
    cryptographic hash) and the view of the image that matched when it was not the
    original; any other reason names its label, its score and the first clause of its
    detail.
    """
    parts = [str(reason["signal"])]
    detail = str(reason.get("detail") or "")
    if "bank" in reason:
        label = reason.get("label")
        bank = f"bank {reason['bank']}"
        parts.append(bank if label in (None, reason["bank"]) else f"{bank} ({label})")
        region = reason.get("region")
        if isinstance(region, Mapping):
            x0, y0, x1, y1 = region["post"]
            parts.append(f"{region['inliers']} keypoints at x {x0:g}-{x1:g}, y {y0:g}-{y1:g}")
        elif reason.get("distance") is not None:
            distance = reason["distance"]
            parts.append(f"distance {distance}" if reason["signal"] in ("pdq", "vpdq") else "exact")
        via = _VIA.search(detail)
        if via is not None:
            query, entry = via.groups()
            parts.append(f"view {query}" if entry == "original" else f"view {query} -> {entry}")
        if isinstance(reason.get("video"), Mapping):
            parts.append(_when(reason["video"]))
        if reason.get("found_by"):
            parts.append(f"found by {reason['found_by']}")
        return SEPARATOR.join(parts)
    if reason.get("label"):
        parts.append(str(reason["label"]))
    if reason.get("score") is not None:
        parts.append(f"score {float(reason['score']):.2f}")
    if reason.get("media"):
        parts.append(str(reason["media"]))
    # The first clause of the detail, less what the line already says.
    said = {parts[0], str(reason.get("label"))}
    words = re.split(r" \| |; ", detail, maxsplit=1)[0].split()
    first = " ".join(w for w in words if w not in said and not w.startswith("score="))
    if first:
        parts.append(first if len(first) <= DETAIL_WIDTH else first[: DETAIL_WIDTH - 1] + "…")
    return SEPARATOR.join(parts)


def _when(video: Mapping[str, Any]) -> str:
    """Where a video match lies, shortly: ``post 6-10 s = entry 3-7 s``, or the shares."""
    segments = video.get("segments") or []
    if segments:
        first = segments[0]
        (ps, pe), (es, ee) = first["post"], first["entry"]
        return f"post {ps:g}-{pe:g} s = entry {es:g}-{ee:g} s"
    if "post_percent" in video:
        return f"frames {video['post_percent']:g}% / {video.get('entry_percent', 0):g}%"
    for side in ("post", "entry"):
        if side in video:
            start, end = video[side]
            return f"{side} {start:g} s" if start == end else f"{side} {start:g}-{end:g} s"
    return "video"


def _why(reasons: Iterable[Mapping[str, Any]]) -> Text:
    return Text("\n".join(describe_reason(r) for r in reasons) or "-")


def render_results(results: Iterable[ScanResult]) -> Table:
    """A table of scan results: post, verdict, one line per reason, actions."""
    table = Table("post", "verdict", "why", "actions", expand=False)
    for result in results:
        table.add_row(
            Text(result.post.id),
            verdict_text(result.outcome.verdict.value),
            _why(r.to_json() for r in result.outcome.reasons),
            Text(", ".join(result.outcome.actions) or "-"),
        )
    return table


def render_decisions(decisions: Iterable[Decision]) -> Table:
    """A table of stored decisions, newest first as given."""
    table = Table("post", "verdict", "why", "actions", "author", "review", "scanned")
    for d in decisions:
        table.add_row(
            Text(d.post_id),
            verdict_text(d.verdict.value),
            _why(d.reasons),
            Text(", ".join(d.actions) or "-"),
            Text(d.author or "-"),
            d.review_state,
            d.scanned_at.strftime("%Y-%m-%d %H:%M"),
        )
    return table


def render_decision(decision: Decision) -> Table:
    """One stored decision in full: every stored field, every reason on its own line."""
    record = decision.to_record()
    table = Table("field", "value", show_header=False)
    for key, value in record.items():
        if key == "reasons":
            shown = Text("\n".join(describe_reason(r) for r in value) or "-")
        elif key == "verdict":
            shown = verdict_text(str(value))
        elif isinstance(value, list):
            shown = Text(", ".join(map(str, value)) or "-")
        else:
            shown = Text("-" if value is None else str(value))
        table.add_row(key, shown)
    return table


def _quality(value: int | None, minimum: int | None) -> str:
    if value is None:
        return "-"
    if minimum is None:
        return str(value)
    return f"{value} (below minimum {minimum})" if value < minimum else f"{value} (min {minimum})"


def render_explanation(explanation: Explanation) -> Group:
    """An explanation as sections: the verdict and the rules that made it, each media
    item's values (the original first; other views summed up), the nearest bank entries
    with why each did or did not match, and the post's own signals."""
    x = explanation
    head = Text()
    head.append(f"post {x.post_id}: ")
    head.append_text(verdict_text(x.verdict))
    head.append(f" — {x.summary}")
    parts: list[Any] = [head]
    if x.stored is not None:
        parts.append(
            Text(f"stored decision: {x.stored['verdict']} (scanned {x.stored['scanned_at']})")
        )
    if x.note:
        parts.append(Text(x.note, style="yellow"))
    if x.reasons:
        rules = Table("rule", "why", title="rules that fired", title_justify="left")
        for reason in x.reasons:
            rules.add_row(Text(str(reason.get("rule", "-"))), Text(describe_reason(reason)))
        parts.append(rules)
    if x.media:
        media = Table(
            "media", "signal", "view", "quality", "value", title="media", title_justify="left"
        )
        for item in x.media:
            where = Text(f"{item.position} {item.path}")
            if item.error is not None:
                media.add_row(where, "-", "-", "-", Text(f"could not be read: {item.error}"))
                continue
            others: dict[str, list[int | None]] = {}
            for v in item.values:
                if v.variant != "original":
                    others.setdefault(v.signal_type, []).append(v.quality)
                    continue
                media.add_row(
                    where,
                    v.signal_type,
                    v.variant,
                    Text(_quality(v.quality, v.min_quality)),
                    Text(v.value),
                )
                where = Text("")
            for signal, qualities in others.items():
                known = [q for q in qualities if q is not None]
                span = f"quality {min(known)}-{max(known)}" if known else "-"
                media.add_row(where, signal, f"{len(qualities)} other views", span, "")
                where = Text("")
        parts.append(media)
    if x.rederived:
        if x.nearest:
            near = Table(
                "media",
                "signal",
                "bank",
                "entry",
                "distance",
                "entry quality",
                "view",
                "result",
                title="nearest bank entries",
                title_justify="left",
            )
            for n in x.nearest:
                label = n.bank if n.label in ("", n.bank) else f"{n.bank} ({n.label})"
                near.add_row(
                    str(n.media),
                    n.signal_type,
                    Text(label),
                    Text(f"{n.entry_id} {n.entry_source}"),
                    f"{n.distance} / threshold {n.threshold}",
                    Text(_quality(n.entry_quality, n.min_quality)),
                    Text(f"{n.query_variant} -> {n.entry_variant}"),
                    Text(n.why, style="green" if n.matches else ""),
                )
            parts.append(near)
        elif x.media:
            parts.append(Text("nearest bank entries: none (the banks hold no such values)"))
        if x.videos:
            videos = Table(
                "media",
                "bank",
                "entry",
                "frames",
                "segments",
                "result",
                title="videos against banked videos (frames near enough, judged whole)",
                title_justify="left",
            )
            for judged in x.videos:
                m = judged.match
                label = m.bank if m.label in ("", m.bank) else f"{m.bank} ({m.label})"
                videos.add_row(
                    str(m.media),
                    Text(label),
                    Text(f"{m.entry_id} {m.entry_source}"),
                    f"post {m.query_percent:g}% / entry {m.entry_percent:g}%",
                    ", ".join(_when({"segments": [g.to_json()]}) for g in m.segments) or "-",
                    Text(("matches: " if judged.matches else "no match: ") + judged.why,
                         style="green" if judged.matches else ""),
                )  # fmt: skip
            parts.append(videos)
    if x.signals:
        signals = Table(
            "signal", "value", "score", "detail", title="post signals", title_justify="left"
        )
        for s in x.signals:
            detail = s.detail or ""
            signals.add_row(
                s.signal_type,
                Text(s.value),
                "-" if s.score is None else f"{s.score:.2f}",
                Text(detail if len(detail) <= 2 * DETAIL_WIDTH else detail[:119] + "…"),
            )
        parts.append(signals)
    return Group(*parts)
