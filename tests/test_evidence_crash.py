"""Crash safety: kill -9 a real writer at many points; recovery leaves a vault that verifies."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from amber.evidence.vault import Vault
from amber.evidence.verify import verify_vault

WRITER = r"""
import hashlib, json, sys
from datetime import timedelta
from pathlib import Path
from amber.evidence.vault import Vault

root, start = Path(sys.argv[1]), int(sys.argv[2])
vault = Vault.open(root / "vault", retention=timedelta(seconds=1))
for n in range(start, start + 10_000):
    media = root / "media" / f"{n}.jpg"
    media.parent.mkdir(exist_ok=True)
    data = b"\xff\xd8" + hashlib.sha256(str(n).encode()).digest() * 64
    media.write_bytes(data)
    vault.preserve(post_id=f"p{n}", post=json.dumps({"id": f"p{n}"}),
                   decision={"post_id": f"p{n}", "verdict": "remove", "reasons": []},
                   media=[(0, media.name, media, hashlib.sha256(data).hexdigest())],
                   source="crash-test", policy="default@test")
    if n % 3 == 0:
        vault.hold(f"p{n}", reason="case", actor="test")
    if n % 5 == 0:
        vault.expire()
    print(n, flush=True)
"""


@pytest.mark.slow
def test_kill_9_at_many_points_never_breaks_the_vault(tmp_path: Path) -> None:
    rng = random.Random(2016)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    written = 0
    kills = 0
    for round_ in range(25):
        child = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), str(round_ * 10_000)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Once it has written its first post (however slow the machine), kill it at a
        # random instant of the work that follows.
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first, child.communicate(timeout=30)[1]
        time.sleep(rng.random() * 0.4)
        os.kill(child.pid, signal.SIGKILL)
        out, err = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL, err
        kills += 1
        written += len((first + out).split())
        Vault.open(tmp_path / "vault")  # restart: recovery runs on open
        report = verify_vault(tmp_path / "vault")
        assert report.ok, (round_, report.problems)
    assert kills == 25 and written >= 25  # the writer really was interrupted mid-work
    assert len(Vault.open(tmp_path / "vault").log) > written
