"""``amber consume --workers N``: N consumer processes that share one durable consumer
(or consumer group), under one parent that passes signals on and waits.

Each worker is ``amber consume`` itself, started with ``--workers 1``; it shares the
stream with the others exactly as a process on another machine would. The parent serves
their metrics (``amber.stream.metrics``) and exits with the worst of their exit codes.
A worker that dies is not started again: the parent says so and the others carry on
(a supervisor such as systemd or Kubernetes restarts the whole command).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType

#: Environment variable that tells a worker process its number (1..N).
WORKER_ENV = "AMBER_CONSUME_WORKER"
#: ... and its parent's process id: a worker whose parent is gone drains and stops.
PARENT_ENV = "AMBER_CONSUME_PARENT"


def run_workers(
    args: Sequence[str],
    count: int,
    *,
    env: dict[str, str] | None = None,
    on_message: Callable[[str], None] = lambda _: None,
) -> int:
    """Run ``count`` processes of ``python -m amber <args>`` until all have ended; SIGTERM
    and SIGINT are passed on to them (each drains). Returns the worst exit code."""
    children: list[subprocess.Popen[bytes]] = []
    base = {**os.environ, **(env or {}), PARENT_ENV: str(os.getpid())}
    for number in range(1, count + 1):
        child = subprocess.Popen(
            [sys.executable, "-m", "amber", *args],
            env={**base, WORKER_ENV: str(number)},
        )
        children.append(child)
        on_message(f"worker {number} started (pid {child.pid})")

    def pass_on(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, pass_on) for s in (signal.SIGTERM, signal.SIGINT)}
    codes: dict[int, int] = {}
    try:
        while len(codes) < len(children):
            for number, child in enumerate(children, 1):
                if number in codes:
                    continue
                code = child.poll()
                if code is None:
                    continue
                codes[number] = code
                if code != 0:
                    how = f"signal {-code}" if code < 0 else f"exit code {code}"
                    on_message(f"worker {number} (pid {child.pid}) ended with {how}")
            time.sleep(0.2)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return max((1 if c < 0 else c) for c in codes.values())
