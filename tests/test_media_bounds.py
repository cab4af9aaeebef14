"""Decoding is bounded and never holds up another post: progressive JPEGs with too many
scans and images too large to decode whole are refused before any pixel is decoded (the
post is still decided on its exact hashes), JPEGs are decoded reduced, concurrent decodes
share a memory budget, and ``Engine.submit`` decodes outside its writer lock."""

from __future__ import annotations

import hashlib
import io
import struct
import threading
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from amber.engine import Engine, default_index_dir
from amber.errors import MediaError
from amber.media import DEFAULT_LIMITS, DecodeBudget, decode_image
from amber.policy import load_policy
from amber.posts import Post, parse_post
from amber.signals import Content, Role, SignalType, SignalValue, default_signal_types
from amber.store.db import connect
from amber.synthetic import photo

POLL = {
    "id": "poll",
    "text": "Kill him or let him go? One hour to vote.",
    "poll": {"question": "?", "options": ["Kill", "Let him go"]},
}


def progressive(image: Image.Image, *, scans: int | None = None) -> bytes:
    """``image`` as a progressive JPEG; with ``scans``, its last scan repeated until the
    file holds that many (each repeat is one more pass over every block for a decoder)."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", progressive=True, quality=90)
    data = buffer.getvalue()
    if scans is None:
        return data
    # In entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so
    # FF DA only ever starts a scan.
    have = data.count(b"\xff\xda")
    last = data.rindex(b"\xff\xda")
    scan = data[last:-2]
    return data[:-2] + scan * (scans - have) + b"\xff\xd9"


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels but holds almost none."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small baseline JPEG whose frame header claims ``width`` x ``height``."""
    buffer = io.BytesIO()
    photo(2, 64, 64).save(buffer, "JPEG", quality=80)
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def post_of(path: Path, post_id: str) -> Post:
    return parse_post({"id": post_id, "media": [{"path": str(path)}]}, base=Path("."))


def test_a_progressive_jpeg_with_too_many_scans_is_refused_before_decoding() -> None:
    normal = progressive(photo(1, 128, 96))
    assert decode_image(normal).width == 128  # an ordinary progressive JPEG decodes
    hostile = progressive(photo(1, 128, 96), scans=DEFAULT_LIMITS.max_scans + 50)
    with pytest.raises(MediaError) as caught:
        decode_image(hostile, source="slow.jpg")
    assert f"more than {DEFAULT_LIMITS.max_scans:,} scans" in str(caught.value)
    assert "slow.jpg" in str(caught.value)


def test_a_post_with_a_many_scan_jpeg_is_decided_on_its_exact_hashes(
    engine: Engine, tmp_path: Path
) -> None:
    data = progressive(photo(1, 128, 96), scans=DEFAULT_LIMITS.max_scans * 3)
    file = tmp_path / "slow.jpg"
    file.write_bytes(data)
    engine.banks.create("known", action="remove")
    engine.banks.import_csv(
        "known", io.StringIO(f"sha256,{hashlib.sha256(data).hexdigest()}\n"), source="t"
    )
    submitted = engine.submit(post_of(file, "slow"))
    assert submitted.decision.verdict == "remove"
    reasons = submitted.to_json()["reasons"]
    assert any(r["signal"] == "sha256" and r.get("bank") == "known" for r in reasons)
    assert any("scans" in r.get("detail", "") for r in reasons if r["signal"] == "media")


def test_an_image_too_large_to_decode_whole_is_refused_before_decoding(
    engine: Engine, tmp_path: Path
) -> None:
    data = png_header(10_000, 10_000)  # 100 megapixels declared in 60 bytes
    assert DEFAULT_LIMITS.max_pixels >= 10_000 * 10_000  # under the header limit
    with pytest.raises(MediaError) as caught:
        decode_image(data, source="huge.png")
    message = str(caught.value)
    assert "10000x10000" in message and "huge.png" in message
    assert f"{DEFAULT_LIMITS.max_decoded_pixels:,}" in message

    file = tmp_path / "huge.png"
    file.write_bytes(data)
    engine.banks.create("known", action="remove")
    engine.banks.import_csv(
        "known", io.StringIO(f"md5,{hashlib.md5(data).hexdigest()}\n"), source="t"
    )
    result = engine.decide_post(post_of(file, "huge"))
    assert result.outcome.verdict == "remove"
    assert any(
        r.signal == "media" and "10000x10000" in (r.detail or "") for r in result.outcome.reasons
    )


def test_a_huge_jpeg_is_decoded_reduced_not_refused() -> None:
    decoded = decode_image(jpeg_declaring(10_000, 10_000))
    assert (decoded.width, decoded.height) == (10_000, 10_000)
    assert decoded.reduced and max(decoded.image.size) <= 768


def test_the_decode_budget_makes_a_decode_wait_for_memory_and_never_deadlocks() -> None:
    budget = DecodeBudget(100)
    events: list[str] = []
    with budget.reserve(60):
        waiter = threading.Thread(target=lambda: _reserve(budget, 60, events))
        waiter.start()
        while budget.waiting == 0 and waiter.is_alive():  # until the waiter is queued
            threading.Event().wait(0.001)
        assert budget.waiting == 1 and events == []
        events.append("first released")
    waiter.join(10)
    assert events == ["first released", "second reserved"]
    assert budget.available == 100
    with budget.reserve(1_000):  # more than the whole budget: runs alone, not for ever
        assert budget.available == 0
    assert budget.available == 100


def _reserve(budget: DecodeBudget, weight: int, events: list[str]) -> None:
    with budget.reserve(weight):
        events.append("second reserved")


class DecodeProbe(SignalType):
    """A media signal type that holds the decode of one file until released, noting
    whether the engine's writer lock was held meanwhile (a plug-in, as a third party
    would write one)."""

    name = "decode_probe"
    version = 1

    def __init__(self, held: bytes) -> None:
        self.held = held
        self.engine: Engine | None = None
        self.decoding = threading.Event()
        self.release = threading.Event()
        self.lock_held: bool | None = None
        self.released: bool | None = None

    def compute(self, content: Content, *, role: Role = Role.query) -> list[SignalValue]:
        if content.data == self.held and self.engine is not None:
            # Held by another thread? (The engine's lock is re-entrant: no ``locked()``.)
            free = self.engine.write_lock.acquire(blocking=False)
            if free:
                self.engine.write_lock.release()
            self.lock_held = not free
            self.decoding.set()
            self.released = self.release.wait(60)  # only runs out when the test fails
        return []

    def validate(self, text: str) -> str:
        return text

    def distance(self, a: str, b: str) -> int:
        return 0 if a == b else 1

    def examples(self) -> list[str]:
        return ["x"]


def test_a_post_is_decided_while_another_is_still_decoding(
    database: str, tmp_path: Path, photo_file: Callable[..., Path]
) -> None:
    slow = photo_file(3)
    probe = DecodeProbe(slow.read_bytes())
    signals = default_signal_types()
    signals.register(probe)
    with Engine(
        db=connect(database),
        vault=tmp_path / "vault",
        policy=load_policy(),
        signals=signals,
        index_dir=default_index_dir(database),
        clock=lambda: datetime.now(UTC),
    ) as engine:
        probe.engine = engine
        engine.submit(parse_post({"id": "warm-up", "text": "hello"}, base=Path(".")))
        first = threading.Thread(target=engine.submit, args=(post_of(slow, "slow"),))
        first.start()
        assert probe.decoding.wait(60)
        second = engine.submit(parse_post(POLL, base=Path(".")))
        assert second.new and second.decision.verdict == "restrict"
        assert first.is_alive()  # the first post is still decoding: it held nothing up
        probe.release.set()
        first.join(60)
        assert probe.lock_held is False and probe.released
        assert engine.decisions.get("slow").verdict == "allow"
