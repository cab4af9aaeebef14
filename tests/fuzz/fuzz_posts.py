"""Coverage-guided fuzzing (atheris) of the post parser.

Each input is a JSONL file's bytes, read as ``amber scan`` reads one
(``amber.posts.read_stream``). Every item must be a ``Post`` or a ``PostError`` naming its
line; an exception out of the reader is a crash.

    python tests/fuzz/fuzz_posts.py CORPUS_DIR [libFuzzer flags, e.g. -runs=5000]

tests/test_fuzz_atheris.py runs it for a bounded number of inputs over a copy of
tests/fuzz/corpus/posts.
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["amber", "json"]):
    from amber.errors import PostError
    from amber.posts import Post, read_stream


def one_input(data: bytes, base: Path) -> None:
    """Read ``data`` as JSONL; raise if an item is neither a post nor a located error."""
    for item in read_stream(io.BytesIO(data), source="fuzz.jsonl", base=base):
        if isinstance(item, PostError):
            if item.source != "fuzz.jsonl" or item.line is None:
                raise AssertionError(f"PostError without its place: {item!r}")
        elif not isinstance(item, Post):
            raise AssertionError(f"neither a post nor a PostError: {item!r}")


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="amber-fuzz-"))
    (base / "photo.jpg").write_bytes(b"\xff\xd8\xff")  # a media path some inputs name
    atheris.Setup(sys.argv, lambda data: one_input(data, base))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
