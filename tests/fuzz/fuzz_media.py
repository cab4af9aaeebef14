"""Coverage-guided fuzzing (atheris) of the media decoder and the signal computation.

Each input is a media file's bytes, hashed as a post's media is (``amber.hashing.hash_file``:
bounded read, reduced decode, every built-in media signal type). amber may refuse it with
its own ``UserError`` (a ``MediaError`` naming the file); any other exception is a crash.
Limits are smaller than the defaults so that no single input can cost more than a fraction
of a second (the default limits' costs are measured in benchmarks/, not here).

    python tests/fuzz/fuzz_media.py CORPUS_DIR [libFuzzer flags, e.g. -runs=2000]

tests/test_fuzz_atheris.py runs it for a bounded number of inputs over a copy of
tests/fuzz/corpus/media.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["amber", "PIL"]):
    from amber.errors import UserError
    from amber.hashing import hash_file
    from amber.media import MediaLimits
    from amber.signals import Role

LIMITS = MediaLimits(max_bytes=1 << 20, max_pixels=1 << 20, max_frames=64)


def one_input(data: bytes, file: Path) -> None:
    """Hash ``data`` as a media file; amber's own refusal is fine, anything else raises."""
    file.write_bytes(data)
    with contextlib.suppress(UserError):
        hash_file(file, role=Role.query, limits=LIMITS)


def main() -> None:
    file = Path(tempfile.mkdtemp(prefix="amber-fuzz-")) / "media"
    atheris.Setup(sys.argv, lambda data: one_input(data, file))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
