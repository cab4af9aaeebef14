"""The input contract: posts as JSON lines, or a folder of media files.

Each line of a JSONL file is one post (see docs/concepts.md)::

    {"id": str, "author": str?, "created_at": RFC 3339?, "text": str?,
     "poll": {"question": str, "options": [str, ...], "closes_at": RFC 3339?} | null,
     "media": [{"path": str}]?, "reply_to": str?}

Parsing never stops at a bad line: ``read_input`` (and ``read_jsonl`` under it) yields a
``PostError`` naming the line and the field for it, and goes on with the next line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from amber.errors import PostError, UserError

MAX_LINE_BYTES = 1_000_000
MAX_MEDIA_PER_POST = 64
#: Longest post id, author or reply_to, in characters: the size of their columns
#: (``decisions.post_id``, ``author``, ``reply_to``; PostgreSQL enforces it).
MAX_ID_LENGTH = 500
#: A file with one of these suffixes given as the input is scanned as one post.
MEDIA_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".mpo"}
)


@dataclass(frozen=True, slots=True)
class Poll:
    """A poll attached to a post."""

    question: str
    options: tuple[str, ...]
    closes_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Media:
    """One media reference: ``path`` as written in the post, ``file`` resolved to disk."""

    path: str
    file: Path


@dataclass(frozen=True, slots=True)
class Post:
    """One post, validated. ``raw`` is the JSON object exactly as it was received."""

    id: str
    author: str | None = None
    created_at: datetime | None = None
    text: str | None = None
    poll: Poll | None = None
    media: tuple[Media, ...] = ()
    reply_to: str | None = None
    raw: str = ""
    source: str = ""
    line: int | None = None


def parse_time(value: object, *, field: str, source: str, line: int | None) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime."""
    if not isinstance(value, str):
        raise PostError(
            f"expected an RFC 3339 timestamp string, got {_kind(value)}",
            source=source,
            line=line,
            field=field,
        )
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise PostError(
            f"{value!r} is not an RFC 3339 timestamp (e.g. 2016-05-01T12:00:00Z)",
            source=source,
            line=line,
            field=field,
        ) from None
    if parsed.tzinfo is None:
        raise PostError(
            f"{value!r} has no time zone; add 'Z' or an offset such as '+00:00'",
            source=source,
            line=line,
            field=field,
        )
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise PostError(
            f"{value!r} is out of range once converted to UTC; give a time between the years "
            "0001 and 9999",
            source=source,
            line=line,
            field=field,
        ) from None


def _storable(
    value: str, *, field: str | None, source: str, line: int | None, limit: int | None = None
) -> str:
    """``value`` if every backend can store it. Raises ``PostError`` for ``field`` if not.

    PostgreSQL text cannot hold NUL; a lone surrogate is not Unicode text and no JSON or
    text column (nor UTF-8) can hold it; ``limit`` is the column's size in characters.
    """
    if "\x00" in value:
        at = value.index("\x00")
        raise PostError(
            f"contains a NUL character (\\u0000) at character {at}; remove it",
            source=source,
            line=line,
            field=field,
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PostError(
            f"contains a lone surrogate {value[exc.start]!r} at character {exc.start}, which "
            "is not valid Unicode; send the character's full surrogate pair or UTF-8",
            source=source,
            line=line,
            field=field,
        ) from None
    if limit is not None and len(value) > limit:
        raise PostError(
            f"{len(value)} characters long; at most {limit} are allowed",
            source=source,
            line=line,
            field=field,
        )
    return value


def _kind(value: object) -> str:
    return {
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _optional_str(
    obj: dict[str, Any], key: str, source: str, line: int | None, *, limit: int | None = None
) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return _storable(value, field=key, source=source, line=line, limit=limit)
    raise PostError(f"expected a string, got {_kind(value)}", source=source, line=line, field=key)


def _parse_poll(value: object, source: str, line: int | None) -> Poll | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PostError(
            f"expected an object or null, got {_kind(value)}",
            source=source,
            line=line,
            field="poll",
        )
    question = value.get("question")
    if not isinstance(question, str):
        raise PostError(
            f"expected a string, got {_kind(question)}",
            source=source,
            line=line,
            field="poll.question",
        )
    _storable(question, field="poll.question", source=source, line=line)
    options = value.get("options")
    if not isinstance(options, list) or not options:
        raise PostError(
            "expected a non-empty array of strings",
            source=source,
            line=line,
            field="poll.options",
        )
    for i, option in enumerate(options):
        if not isinstance(option, str):
            raise PostError(
                f"expected a string, got {_kind(option)}",
                source=source,
                line=line,
                field=f"poll.options[{i}]",
            )
        _storable(option, field=f"poll.options[{i}]", source=source, line=line)
    closes_at = value.get("closes_at")
    return Poll(
        question=question,
        options=tuple(options),
        closes_at=None
        if closes_at is None
        else parse_time(closes_at, field="poll.closes_at", source=source, line=line),
    )


def _parse_media(value: object, base: Path, source: str, line: int | None) -> tuple[Media, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PostError(
            f'expected an array of {{"path": ...}} objects, got {_kind(value)}',
            source=source,
            line=line,
            field="media",
        )
    if len(value) > MAX_MEDIA_PER_POST:
        raise PostError(
            f"{len(value)} media items; at most {MAX_MEDIA_PER_POST} per post",
            source=source,
            line=line,
            field="media",
        )
    items = []
    for i, item in enumerate(value):
        field = f"media[{i}].path"
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            got = _kind(item.get("path")) if isinstance(item, dict) else _kind(item)
            raise PostError(
                f"expected an object with a string 'path', got {got}",
                source=source,
                line=line,
                field=field,
            )
        path = _storable(item["path"], field=field, source=source, line=line)
        if not path.strip():
            raise PostError(
                f"{path!r} is not a usable file path", source=source, line=line, field=field
            )
        file = Path(path) if Path(path).is_absolute() else base / path
        try:
            found = file.is_file()
            why = "" if found else "is a folder, not a file" if file.is_dir() else "does not exist"
        except OSError as exc:  # a name longer than the file system allows, say
            found, why = False, f"cannot be looked up: {exc.strerror or exc}"
        if not found:
            shown = str(file) if len(str(file)) <= 200 else str(file)[:200] + "..."
            raise PostError(f"media file {shown!r} {why}", source=source, line=line, field=field)
        items.append(Media(path=path, file=file))
    return tuple(items)


def parse_post(
    obj: object,
    *,
    base: Path,
    source: str = "<post>",
    line: int | None = None,
    raw: str | None = None,
) -> Post:
    """Validate one decoded JSON value as a post. Raises ``PostError`` naming the field."""
    if not isinstance(obj, dict):
        raise PostError(f"expected a JSON object, got {_kind(obj)}", source=source, line=line)
    post_id = obj.get("id")
    if post_id is None:
        raise PostError("missing required post id", source=source, line=line, field="id")
    if not isinstance(post_id, str) or not post_id.strip():
        raise PostError(
            f"expected a non-empty string, got {_kind(post_id)} {post_id!r}",
            source=source,
            line=line,
            field="id",
        )
    _storable(post_id, field="id", source=source, line=line, limit=MAX_ID_LENGTH)
    created_at = obj.get("created_at")
    post = Post(
        id=post_id,
        author=_optional_str(obj, "author", source, line, limit=MAX_ID_LENGTH),
        created_at=None
        if created_at is None
        else parse_time(created_at, field="created_at", source=source, line=line),
        text=_optional_str(obj, "text", source, line),
        poll=_parse_poll(obj.get("poll"), source, line),
        media=_parse_media(obj.get("media"), base, source, line),
        reply_to=_optional_str(obj, "reply_to", source, line, limit=MAX_ID_LENGTH),
        raw=raw if raw is not None else json.dumps(obj, ensure_ascii=False, sort_keys=True),
        source=source,
        line=line,
    )
    _storable(post.raw, field=None, source=source, line=line)  # e.g. in an unknown field
    return post


def _lines(handle: BinaryIO, first: int = 1) -> Iterator[tuple[int, bytes | None]]:
    """Numbered lines (from ``first``), each read with a bound; ``None`` for a line over
    the bound."""
    number = first - 1
    while True:
        data = handle.readline(MAX_LINE_BYTES + 1)
        if not data:
            return
        number += 1
        if len(data) > MAX_LINE_BYTES and not data.endswith(b"\n"):
            while data and not data.endswith(b"\n"):  # skip the rest of the long line
                data = handle.readline(MAX_LINE_BYTES)
            yield number, None
            continue
        yield number, data


def read_jsonl(path: Path) -> Iterator[Post | PostError]:
    """Posts of a JSONL file in order; a ``PostError`` in place of each bad line.

    Blank lines are skipped. A repeated id within the file is an error on the later line.
    Raises ``UserError`` only when the file itself cannot be opened.
    """
    source = str(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UserError(f"cannot open input {source!r}: {exc.strerror}") from None
    with handle:
        yield from read_stream(handle, source=source, base=path.parent)


def read_stream(
    handle: BinaryIO, *, source: str, base: Path, first_line: int = 1
) -> Iterator[Post | PostError]:
    """Posts of JSONL read from ``handle`` (standard input, say) in order, as ``read_jsonl``
    reads a file; media paths are relative to ``base``, and errors name ``source``. The
    first line read is line ``first_line`` of ``source`` (a part of a file: a backfill's
    partition, ``amber.backfill``)."""
    seen: dict[str, int] = {}
    for number, data in _lines(handle, first_line):
        if data is None:
            yield PostError(
                f"line is longer than {MAX_LINE_BYTES} bytes", source=source, line=number
            )
            continue
        if number == 1:
            data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
        if not data.strip():
            continue
        try:
            text = data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            yield PostError(
                f"not UTF-8 ({exc.reason} at byte {exc.start})", source=source, line=number
            )
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield PostError(
                f"invalid JSON: {exc.msg} at column {exc.colno}", source=source, line=number
            )
            continue
        except RecursionError:  # a line of 100,000 '[' must not end the whole scan
            yield PostError(
                "JSON nested too deeply to read; a post is at most a few levels deep",
                source=source,
                line=number,
            )
            continue
        try:
            post = parse_post(obj, base=base, source=source, line=number, raw=text)
        except PostError as exc:
            yield exc
            continue
        if post.id in seen:
            yield PostError(
                f"post id {post.id!r} already appeared on line {seen[post.id]}",
                source=source,
                line=number,
                field="id",
            )
            continue
        seen[post.id] = number
        yield post


def read_folder(folder: Path) -> Iterator[Post | PostError]:
    """One post per regular file under ``folder`` (hidden files skipped), id = relative path."""
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = file.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        yield media_post(file, relative.as_posix(), source=str(folder))


def media_post(file: Path, post_id: str, *, source: str) -> Post:
    """A post of one media file (id: ``post_id``), as folder and single-file input make them."""
    raw = json.dumps({"id": post_id, "media": [{"path": post_id}]}, ensure_ascii=False)
    return Post(id=post_id, media=(Media(path=post_id, file=file),), raw=raw, source=source)


def read_input(path: Path) -> Iterator[Post | PostError]:
    """Posts from a JSONL file, a folder of media, or one media file (one post).

    Raises ``UserError`` if ``path`` is none of these.
    """
    if path.is_dir():
        return read_folder(path)
    if path.is_file() and path.suffix.lower() in MEDIA_SUFFIXES:
        return iter([media_post(path, path.name, source=str(path.parent))])
    if path.is_file():
        return read_jsonl(path)
    raise UserError(
        f"input {str(path)!r} does not exist; give a JSONL file of posts or a folder of media files"
    )


def count_input(path: Path) -> int | None:
    """Roughly how many posts ``path`` holds (non-blank lines or files), for progress bars."""
    try:
        if path.is_dir():
            return sum(1 for p in path.rglob("*") if p.is_file())
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return None
