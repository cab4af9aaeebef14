"""What every benchmark records about where it ran: CPU, cores, load, versions, commit;
and ``resident``, the memory of the process measuring.

Imported by the scripts beside it (``python benchmarks/<name>.py`` puts this folder on the
import path).
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pdqhash
import PIL

import amber
from amber.hashing import worker_count

ROOT = Path(__file__).resolve().parent.parent


def describe(**extra: Any) -> dict[str, Any]:
    """The machine and software of this run, plus ``extra`` (e.g. other libraries' versions)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    source = Path(amber.__file__).resolve().parent
    commit = None
    if source.is_relative_to(ROOT):  # else amber was imported from elsewhere (PYTHONPATH)
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            commit = subprocess.run(
                ["git", "describe", "--always", "--dirty"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": worker_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "pdqhash": pdqhash.__version__,
        "amber": amber.__version__,
        "amber_source": str(source),
        "amber_commit": commit,
        **extra,
    }


def resident() -> dict[str, float]:
    """This process's resident memory in MB (10**6 bytes), total and split."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024 / 1e6
    return fields
