"""``DecisionStore.related``: the posts the console lists beside an item (same author,
same media by SHA-256 or PDQ)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from amber.engine import Engine
from amber.posts import parse_post


def test_posts_by_the_same_author_or_with_the_same_media_are_related(
    engine: Engine, photo_file: Callable[..., Path]
) -> None:
    shared, other = photo_file(1), photo_file(2)

    def decide(post_id: str, author: str, image: Path) -> None:
        raw = {"id": post_id, "author": author, "media": [{"path": str(image)}]}
        engine.decide_post(parse_post(raw, base=Path("."), source="test"))

    decide("me", "a", shared)
    decide("same-author", "a", other)
    decide("same-media", "b", shared)
    decide("both", "a", shared)
    decide("stranger", "c", other)
    found = {r.post_id: r.why for r in engine.decisions.related("me")}
    assert found == {
        "same-author": "same author",
        "same-media": "same media",
        "both": "same author, same media",
    }
    assert all(r.verdict == "allow" for r in engine.decisions.related("me"))
    assert [r.post_id for r in engine.decisions.related("me", limit=1)] == ["both"]
    assert engine.decisions.related("nobody") == []
