"""Parsing posts: every bad line names its line and field, and the rest still parse."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from amber.errors import PostError, UserError
from amber.posts import (
    MAX_ID_LENGTH,
    Post,
    count_input,
    parse_post,
    read_folder,
    read_input,
    read_jsonl,
)
from amber.store.tables import decisions


def test_a_full_post_parses(
    write_posts: Callable[..., Path], photo_file: Callable[..., Path]
) -> None:
    photo_file(1, "a.png")
    path = write_posts(
        [
            {
                "id": "p1",
                "author": "someone",
                "created_at": "2016-05-01T12:00:00+02:00",
                "text": "Kill him or let him go?",
                "reply_to": "p0",
                "poll": {
                    "question": "Decide",
                    "options": ["kill", "let go"],
                    "closes_at": "2016-05-01T13:00:00Z",
                },
                "media": [{"path": "images/a.png"}],
            }
        ]
    )
    [post] = list(read_jsonl(path))
    assert isinstance(post, Post)
    assert post.created_at == datetime(2016, 5, 1, 10, 0, tzinfo=UTC)
    assert post.poll is not None and post.poll.options == ("kill", "let go")
    assert post.poll.closes_at == datetime(2016, 5, 1, 13, 0, tzinfo=UTC)
    assert post.media[0].file == path.parent / "images" / "a.png"
    assert post.line == 1 and json.loads(post.raw)["id"] == "p1"


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ("{not json", None, "invalid JSON"),
        ("[1, 2]", None, "expected a JSON object, got an array"),
        ('{"text": "no id"}', "id", "missing required post id"),
        ('{"id": 7}', "id", "expected a non-empty string"),
        ('{"id": ""}', "id", "non-empty string"),
        ('{"id": "x", "text": 5}', "text", "expected a string, got a number"),
        ('{"id": "x", "author": ["a"]}', "author", "got an array"),
        ('{"id": "x", "created_at": "yesterday"}', "created_at", "not an RFC 3339"),
        ('{"id": "x", "created_at": "2016-05-01T12:00:00"}', "created_at", "no time zone"),
        ('{"id": "x", "poll": "yes"}', "poll", "expected an object or null"),
        ('{"id": "x", "poll": {"options": ["a"]}}', "poll.question", "expected a string"),
        ('{"id": "x", "poll": {"question": "q", "options": []}}', "poll.options", "non-empty"),
        (
            '{"id": "x", "poll": {"question": "q", "options": ["a", 2]}}',
            "poll.options[1]",
            "expected a string",
        ),
        (
            '{"id": "x", "poll": {"question": "q", "options": ["a"], "closes_at": 5}}',
            "poll.closes_at",
            "timestamp string",
        ),
        ('{"id": "x", "media": {"path": "a.png"}}', "media", "expected an array"),
        ('{"id": "x", "media": [{"file": "a.png"}]}', "media[0].path", "string 'path'"),
        ('{"id": "x", "media": [{"path": "missing.png"}]}', "media[0].path", "does not exist"),
        ('{"id": "x", "media": [{"path": "."}]}', "media[0].path", "is a folder"),
    ],
)
def test_bad_lines_name_line_and_field(
    write_posts: Callable[..., Path], line: str, field: str | None, words: str
) -> None:
    path = write_posts(['{"id": "ok-1"}', line, '{"id": "ok-2"}'])
    items = list(read_jsonl(path))
    assert [i.id for i in items if isinstance(i, Post)] == ["ok-1", "ok-2"]
    [error] = [i for i in items if isinstance(i, PostError)]
    assert error.line == 2
    assert error.field == field
    assert words in error.message
    assert f"{path} line 2" in error.message


def test_duplicate_id_is_an_error_on_the_later_line(write_posts: Callable[..., Path]) -> None:
    items = list(read_jsonl(write_posts([{"id": "a"}, {"id": "b"}, {"id": "a"}])))
    assert isinstance(items[2], PostError)
    assert items[2].line == 3 and "already appeared on line 1" in items[2].message


def test_blank_lines_are_skipped_and_line_numbers_kept(write_posts: Callable[..., Path]) -> None:
    items = list(read_jsonl(write_posts(["", {"id": "a"}, "   ", "{bad"])))
    assert isinstance(items[0], Post) and items[0].line == 2
    assert isinstance(items[1], PostError) and items[1].line == 4


def test_a_deeply_nested_line_is_an_error_for_that_line_and_the_rest_is_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nested.jsonl"
    deep = '{"id": "deep", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path.write_text(f'{{"id": "a"}}\n{deep}\n{{"id": "b"}}\n', encoding="utf-8")
    items = list(read_jsonl(path))
    assert [type(i) for i in items] == [Post, PostError, Post]
    error = items[1]
    assert isinstance(error, PostError) and error.line == 2
    assert "nested" in error.message


def test_non_utf8_line_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "\xff"}\n')
    items = list(read_jsonl(path))
    assert isinstance(items[1], PostError) and "not UTF-8" in items[1].message


def test_absolute_media_path(
    tmp_path: Path, photo_file: Callable[..., Path], write_posts: Callable[..., Path]
) -> None:
    image = photo_file(3)
    [post] = list(read_jsonl(write_posts([{"id": "a", "media": [{"path": str(image)}]}])))
    assert isinstance(post, Post) and post.media[0].file == image


def test_folder_input_makes_one_post_per_file(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(b"x")
    (folder / "sub" / "b.jpg").write_bytes(b"y")
    (folder / ".hidden").write_bytes(b"z")
    posts = list(read_folder(folder))
    assert [p.id for p in posts if isinstance(p, Post)] == ["a.png", "sub/b.jpg"]
    assert count_input(folder) == 3


def test_missing_input_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        read_input(tmp_path / "nope.jsonl")


LONG = "x" * (MAX_ID_LENGTH + 1)


@pytest.mark.parametrize(
    ("post", "field", "words"),
    [
        ({"id": "a\u0000b"}, "id", "NUL"),
        ({"id": LONG}, "id", f"at most {MAX_ID_LENGTH}"),
        ({"id": "\ud800"}, "id", "lone surrogate"),
        ({"id": "x", "author": "a\u0000"}, "author", "NUL"),
        ({"id": "x", "author": LONG}, "author", f"at most {MAX_ID_LENGTH}"),
        ({"id": "x", "reply_to": "\u0000"}, "reply_to", "NUL"),
        ({"id": "x", "reply_to": LONG}, "reply_to", f"at most {MAX_ID_LENGTH}"),
        ({"id": "x", "author": "\udfff"}, "author", "lone surrogate"),
        ({"id": "x", "text": "hi\u0000"}, "text", "NUL"),
        ({"id": "x", "text": "hi \ud83d"}, "text", "lone surrogate"),
        ({"id": "x", "poll": {"question": "\ud800", "options": ["a"]}}, "poll.question", "lone"),
        (
            {"id": "x", "poll": {"question": "q", "options": ["a", "\u0000"]}},
            "poll.options[1]",
            "NUL",
        ),
        ({"id": "x", "media": [{"path": "\udc80.png"}]}, "media[0].path", "lone surrogate"),
        ({"id": "x", "created_at": "0001-01-01T00:00:00+01:00"}, "created_at", "out of range"),
        (
            {
                "id": "x",
                "poll": {
                    "question": "q",
                    "options": ["a"],
                    "closes_at": "0001-01-01T00:00:00+01:00",
                },
            },
            "poll.closes_at",
            "out of range",
        ),
        ({"id": "x", "created_at": "9999-12-31T23:59:59-01:00"}, "created_at", "out of range"),
    ],
)
def test_values_no_database_can_hold_are_errors_for_their_field(
    write_posts: Callable[..., Path], post: dict[str, object], field: str, words: str
) -> None:
    path = write_posts([post, {"id": "next", "text": "fine \U0001f600"}])
    [error, after] = list(read_jsonl(path))
    assert isinstance(error, PostError)
    assert (error.line, error.field) == (1, field)
    assert words in error.message and f"{path} line 1, field '{field}'" in error.message
    assert isinstance(after, Post) and after.text == "fine \U0001f600"


def test_id_limit_is_the_column_size(write_posts: Callable[..., Path]) -> None:
    for column in (decisions.c.post_id, decisions.c.author, decisions.c.reply_to):
        assert getattr(column.type, "length", None) == MAX_ID_LENGTH
    [post] = list(read_jsonl(write_posts([{"id": "x" * MAX_ID_LENGTH}])))
    assert isinstance(post, Post)


def test_a_lone_surrogate_anywhere_in_a_request_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PostError, match="request: contains a lone surrogate") as info:
        parse_post({"id": "x", "extra": {"note": "\ud800"}}, base=tmp_path, source="request")
    assert info.value.field is None
