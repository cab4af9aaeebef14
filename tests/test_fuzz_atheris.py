"""Coverage-guided fuzz runs (atheris) of the media decoder with the signal computation, and
of the post parser: each a bounded run in a subprocess over a copy of its seed corpus
(tests/fuzz/corpus/, small generated files made by tests/fuzz/make_corpus.py), failing on
any crash or exception that is not amber's own. The seeds are also replayed in process, so
an input kept in the corpus after a run found it stays a plain regression test."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from amber.errors import MediaError, PostError
from amber.hashing import hash_file
from amber.posts import Post, read_stream
from amber.signals import Role

FUZZ = Path(__file__).with_name("fuzz")
CORPUS = FUZZ / "corpus"

#: Bounded by inputs, not by time: a few seconds of CPU each (about 1,500 decodes, 10,000
#: JSONL files). ``max_total_time`` is only a backstop on a loaded machine; ``-timeout``
#: makes one input that takes 10 s a failure (a hang), ``-rss_limit_mb`` one over 2 GB.
RUNS = {"media": 1500, "posts": 10_000}
#: JSONL inputs stay under 512 bytes: deeper nesting than that is issue 12 finding 13's
#: (one deeply nested line aborts a whole scan), tested in test_fuzz_parsers.py.
MAX_LEN = {"media": 4096, "posts": 512}


@pytest.mark.parametrize("target", ["media", "posts"])
def test_atheris_run_finds_no_crash(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS / target, corpus)  # the fuzzer adds what it finds to its corpus
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    run = subprocess.run(
        [
            sys.executable,
            str(FUZZ / f"fuzz_{target}.py"),
            str(corpus),
            f"-runs={RUNS[target]}",
            f"-max_len={MAX_LEN[target]}",
            "-max_total_time=60",
            "-timeout=10",
            "-rss_limit_mb=2048",
            "-seed=1",
            f"-artifact_prefix={artifacts}/",
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    found = {p.name: p.read_bytes()[:300] for p in artifacts.iterdir()}
    assert run.returncode == 0 and not found, (
        f"fuzz_{target}.py exited {run.returncode}; inputs that failed: {found}\n"
        f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    )
    assert "Done " in run.stderr, run.stderr[-2000:]  # it ran (it stops early only on time)


@pytest.mark.parametrize("seed", sorted(p.name for p in (CORPUS / "media").iterdir()))
def test_media_seed_hashes_or_fails_as_media_error(seed: str, tmp_path: Path) -> None:
    file = tmp_path / seed
    shutil.copy(CORPUS / "media" / seed, file)
    try:
        hashes = hash_file(file, role=Role.query)
    except MediaError as exc:
        assert exc.path == str(file)
        return
    assert hashes.original("sha256") is not None


@pytest.mark.parametrize("seed", sorted(p.name for p in (CORPUS / "posts").iterdir()))
def test_post_seed_reads_as_posts_or_located_errors(seed: str, tmp_path: Path) -> None:
    data = (CORPUS / "posts" / seed).read_bytes()
    items = list(read_stream(io.BytesIO(data), source=seed, base=tmp_path))
    assert items
    for item in items:
        assert isinstance(item, Post) or (
            isinstance(item, PostError) and item.source == seed and item.line is not None
        )
