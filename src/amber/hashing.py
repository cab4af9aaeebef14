"""Turning media files into signal values, in parallel across cores.

The work of one file (bounded read, reduced decode, every signal type) is a pure function
of the file and the settings, so it runs in worker processes; only small results travel back.
The signal types are the engine's own (plug-ins included): a ``Hasher`` carries them, and
``parallel_map`` sends it to each worker once, when the worker starts.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from amber.errors import InternalError, MediaError
from amber.media import DEFAULT_LIMITS, DecodedImage, MediaLimits, decode_image, read_media
from amber.signals import Content, Role, SignalType, SignalValue, default_signal_types
from amber.signals.base import TRUNCATED, Reads

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class MediaHashes:
    """The signal values of one media file (all variants) and its stored size.

    Every file that could be read has its exact hashes (sha256, md5: the bytes as
    received), whatever the decoder said. ``undecoded`` says why the file's pixels could
    not be seen (not an image or a video, over a decode limit, corrupt), ``None`` when
    they were; the size is then unknown (``None``), as it is for a video. ``truncated``
    is true for an image or a video that ended early and was decoded as far as it goes.
    """

    path: str
    values: tuple[SignalValue, ...]
    width: int | None
    height: int | None
    undecoded: str | None = None
    truncated: bool = False

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


def hash_file(
    path: str | Path,
    *,
    role: Role,
    limits: MediaLimits = DEFAULT_LIMITS,
    signals: Sequence[SignalType] | None = None,
) -> MediaHashes:
    """Every value of ``signals`` (default: the built-in media types) for one media file.

    A file whose bytes were read always gets the values that need only its bytes (the
    exact hashes); when it is neither an image nor a video some type could read (vPDQ's
    frames), or a signal type fails on it, ``undecoded`` says why. Raises ``MediaError``
    naming the file when it cannot be read (missing, not a regular file, over
    ``limits.max_bytes``).
    """
    file = Path(path)
    data = read_media(file, limits=limits)
    return hash_data(data, source=str(file), role=role, limits=limits, signals=signals)


def hash_data(
    data: bytes,
    *,
    source: str,
    role: Role,
    limits: MediaLimits = DEFAULT_LIMITS,
    signals: Sequence[SignalType] | None = None,
) -> MediaHashes:
    """``hash_file`` for media already in memory (an upload, a fetched URL); ``source``
    names it (the result's ``path``, error messages). Raises ``MediaError`` naming
    ``source`` when ``data`` is over ``limits.max_bytes``."""
    if len(data) > limits.max_bytes:
        raise MediaError(
            f"is larger than the limit of {limits.max_bytes:,} bytes ({len(data):,} bytes)",
            path=source,
        )
    not_image: str | None = None
    try:
        decoded: DecodedImage | None = decode_image(data, limits=limits, source=source)
    except MediaError as exc:
        decoded, not_image = None, exc.reason
    content = Content(data=data, image=None if decoded is None else decoded.image)
    values: list[SignalValue] = []
    failed: str | None = None
    seen = decoded is not None
    for signal_type in builtin_media_types() if signals is None else signals:
        try:
            computed = signal_type.compute(content, role=role)
        except MediaError as exc:  # its other values stand; the failure is said
            failed = failed or f"{signal_type.name}: {exc.reason}"
            continue
        values.extend(computed)
        seen = seen or (bool(computed) and not signal_type.exact)  # a video's frames
    undecoded = failed or (None if seen else not_image)
    cut = any((v.detail or "").startswith(TRUNCATED) for v in values)  # a video's frames
    if decoded is None:
        return MediaHashes(source, tuple(values), None, None, undecoded, truncated=cut)
    return MediaHashes(
        source,
        tuple(values),
        decoded.width,
        decoded.height,
        undecoded=undecoded,
        truncated=decoded.truncated or cut,
    )


def hash_file_safely(
    path: str,
    role: Role,
    limits: MediaLimits = DEFAULT_LIMITS,
    signals: Sequence[SignalType] | None = None,
) -> MediaHashes | MediaFailure:
    """``hash_file``, with a failure returned as data instead of raised."""
    try:
        return hash_file(path, role=role, limits=limits, signals=signals)
    except MediaError as exc:
        return MediaFailure(path, exc.reason)


@cache
def builtin_media_types() -> tuple[SignalType, ...]:
    """The built-in media signal types (for callers without an engine: benchmarks)."""
    return media_types(default_signal_types())


def media_types(signals: Iterable[SignalType]) -> tuple[SignalType, ...]:
    """The types of ``signals`` that read media files, in registration order."""
    return tuple(s for s in signals if s.reads is Reads.media)


@dataclass(frozen=True, slots=True)
class Hasher:
    """Hashes the media files of one item (a post, a bank file) with given signal types.

    A plain value that pickles (its signal types do), so it can run in worker processes.
    """

    signals: tuple[SignalType, ...]
    role: Role
    limits: MediaLimits = DEFAULT_LIMITS

    def __call__(self, files: Sequence[str]) -> list[MediaHashes | MediaFailure]:
        return [hash_file_safely(f, self.role, self.limits, self.signals) for f in files]

    def one(self, path: str) -> MediaHashes | MediaFailure:
        """The values of one file, a failure returned as data."""
        return hash_file_safely(path, self.role, self.limits, self.signals)


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
    # ``function`` (with the signal types it carries) goes to each worker once, at start.
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_install, initargs=(function,)
    ) as pool:
        yield from _bounded_map(pool, _call_installed, head, iterator, prefetch)


#: The function a worker process runs for every item (``parallel_map`` installs it).
_installed: Callable[[Any], Any] | None = None


def _install(function: Callable[[Any], Any]) -> None:
    global _installed
    _installed = function


def _call_installed(item: Any) -> Any:
    if _installed is None:
        raise InternalError("a parallel_map worker was started without its function")
    return _installed(item)


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
