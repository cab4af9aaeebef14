"""HMA's test package: its own test modules (from the folder beside the project, never
copied into it) with the fixtures of ``utils.py`` here, which build amber."""

from __future__ import annotations

import os
from pathlib import Path

#: HMA's tests: ``AMBER_HMA_TESTS``, else ``../shared/peers/hma/OpenMediaMatch/tests``
#: beside the project, as CI has it.
PEER = Path(
    os.environ.get("AMBER_HMA_TESTS")
    or Path(__file__).resolve().parents[4].parent / "shared/peers/hma/OpenMediaMatch/tests"
)
__path__.append(str(PEER))  # after this folder: utils.py here wins
