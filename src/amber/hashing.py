"""Turning media files into signal values, in parallel across cores.

The work of one file (bounded read, reduced decode, every signal type) is a pure function
of the file and the settings, so it runs in worker processes; only small results travel back.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from amber.errors import MediaError
from amber.media import DEFAULT_LIMITS, MediaLimits, decode_image, read_media
from amber.signals import Content, Role, SignalType, SignalValue, default_signal_types
from amber.signals.base import Scope

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class MediaHashes:
    """The signal values of one media file (all variants) and its stored size."""

    path: str
    values: tuple[SignalValue, ...]
    width: int
    height: int

    def original(self, signal_type: str) -> SignalValue | None:
        """This file's own value of ``signal_type`` (variant ``"original"``), if any."""
        for value in self.values:
            if value.signal_type == signal_type and value.variant == "original":
                return value
        return None


@dataclass(frozen=True, slots=True)
class MediaFailure:
    """Why one media file could not be hashed (plain data: it crosses process boundaries)."""

    path: str
    reason: str


def hash_file(path: str | Path, *, role: Role, limits: MediaLimits = DEFAULT_LIMITS) -> MediaHashes:
    """Every signal value of one image file. Raises ``MediaError`` naming the file."""
    file = Path(path)
    data = read_media(file, limits=limits)
    decoded = decode_image(data, limits=limits, source=str(file))
    content = Content(data=data, image=decoded.image)
    values: list[SignalValue] = []
    for signal_type in _signal_types():
        values.extend(signal_type.compute(content, role=role))
    return MediaHashes(str(file), tuple(values), decoded.width, decoded.height)


def hash_file_safely(
    path: str, role: Role, limits: MediaLimits = DEFAULT_LIMITS
) -> MediaHashes | MediaFailure:
    """``hash_file``, with a failure returned as data instead of raised."""
    try:
        return hash_file(path, role=role, limits=limits)
    except MediaError as exc:
        return MediaFailure(path, exc.reason)


_SIGNALS: list[SignalType] = []


def _signal_types() -> list[SignalType]:
    """The built-in signal types, built once per process (workers build their own)."""
    if not _SIGNALS:
        _SIGNALS.extend(s for s in default_signal_types() if s.scope is Scope.media)
    return _SIGNALS


def worker_count() -> int:
    """Processes to hash with: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def parallel_map(
    function: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int | None = None,
    serial_below: int = 8,
    prefetch: int = 64,
) -> Iterator[R]:
    """``map`` across processes, results in input order, with bounded look-ahead.

    Small jobs (fewer than ``serial_below`` items) run in this process: starting workers
    would cost more than the work.
    """
    iterator = iter(items)
    head: list[T] = []
    for item in iterator:
        head.append(item)
        if len(head) >= serial_below:
            break
    workers = worker_count() if workers is None else workers
    if len(head) < serial_below or workers <= 1:
        yield from map(function, head)
        yield from map(function, iterator)
        return
    # Workers come from a fork server, never forked from this process: a fork taken while
    # another thread here holds a lock (the pool's own manager thread, a model loaded for
    # the text signals) can leave the child waiting on that lock for ever.
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from _bounded_map(pool, function, head, iterator, prefetch)


def _bounded_map(
    pool: Executor, function: Callable[[T], R], head: list[T], rest: Iterator[T], prefetch: int
) -> Iterator[R]:
    from collections import deque
    from itertools import chain

    pending: deque[Future[R]] = deque()
    source = chain(head, rest)
    for item in source:
        pending.append(pool.submit(function, item))
        if len(pending) >= prefetch:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
