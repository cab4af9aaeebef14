"""A post's own signal values: what the signal types that read its words (``Reads.post``:
the harm-poll detector and plug-ins like it) give for it, never its media or the database.

The engine computes them as it decides a post (``Engine.findings``), or takes them computed
ahead where the post was read (a Dask worker of a backfill: ``amber.backfill``), but only
when the same types at the same versions computed them (``PostValues.types``); otherwise it
computes them again. This module imports no engine or database, so a worker loads little.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from amber.posts import Post
from amber.signals.base import Content, SignalType, SignalValue


@dataclass(frozen=True, slots=True)
class PostValues:
    """The values of one post's own signal types, and which types (name, version, in the
    order they ran) computed them."""

    values: tuple[SignalValue, ...]
    types: tuple[tuple[str, int], ...]


def stamp(types: Sequence[SignalType]) -> tuple[tuple[str, int], ...]:
    """The name and version of each of ``types``, in order: what ``PostValues.types`` must
    equal for values to be taken instead of computed again."""
    return tuple((t.name, t.version) for t in types)


def compute(post: Post, types: Sequence[SignalType]) -> list[SignalValue]:
    """The values ``types`` (signal types that read a post's words) give for ``post``'s
    text and poll, type after type."""
    words = Content(
        text=post.text,
        question=post.poll.question if post.poll else None,
        options=post.poll.options if post.poll else (),
    )
    return [v for t in types for v in t.compute(words)]


def compute_ahead(post: Post, types: Sequence[SignalType]) -> PostValues:
    """``compute``, stamped with the types that computed the values (``stamp``)."""
    return PostValues(tuple(compute(post, types)), stamp(types))
