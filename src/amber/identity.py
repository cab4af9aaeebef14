"""Whose post, and which content: a post id is scoped to its client, and new content
under a known id is a new version of the post.

The client is the name of the API token that sent the post; posts scanned by the command
line or the library belong to ``DEFAULT_CLIENT``, which no token name can be (token names
begin with a letter or a digit), so no token can ever speak for it. The content digest is
what makes a retry a retry: the post JSON as received, with each media file's path
replaced by the SHA-256 of its bytes (a re-upload under another file name is the same
content; the same name with other bytes is not).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from amber.posts import Post

#: The client of posts scanned by the command line or the library, and of every decision
#: stored before post ids were scoped (migration 0007).
DEFAULT_CLIENT = "_local"

#: Bytes read at a time when hashing a media file for the digest.
_CHUNK = 1 << 20


def item_key(post_id: str, client: str = DEFAULT_CLIENT, version: int = 1) -> str:
    """The key of one version of one client's post in the evidence vault (and in its
    staging area): the post id itself for version 1 of a local post (as every item was
    before post ids were scoped), else the JSON array ``[client, post_id, version]``. A
    post id that begins with ``[`` is always given as the array, so no two posts share a
    key."""
    if client == DEFAULT_CLIENT and version == 1 and not post_id.startswith("["):
        return post_id
    return json.dumps([client, post_id, version], ensure_ascii=False)


def content_digest(post: Post, sha256s: Sequence[str | None] = ()) -> str:
    """The SHA-256 (hex) of a post's content: its JSON as received, each media path
    replaced by its file's SHA-256 (``"unreadable: <reason>"`` when it cannot be read).

    ``sha256s`` are the files' SHA-256s where they are already known (a scan has hashed
    them), by media position; the other files are read here."""
    try:
        body: Any = json.loads(post.raw) if post.raw else {"id": post.id}
    except ValueError:  # a hand-built Post: its raw text is what there is
        body = post.raw
    known = list(sha256s)
    files = [
        known[i] if i < len(known) and known[i] is not None else _file_digest(m.file)
        for i, m in enumerate(post.media)
    ]
    if isinstance(body, dict) and isinstance(body.get("media"), list):
        body = {**body, "media": files}
    else:
        body = {"post": body, "media": files}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _file_digest(file: Path) -> str:
    digest = hashlib.sha256()
    try:
        with file.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    return digest.hexdigest()
