"""Cryptographic hashes of the original bytes: sha256 and md5 (exact match only)."""

from __future__ import annotations

import hashlib
import re
from typing import ClassVar

from amber.errors import SignalValueError
from amber.signals.base import Content, Role, SignalType, SignalValue


class _DigestSignal(SignalType):
    algorithm: ClassVar[str]
    hex_length: ClassVar[int]

    def compute(self, content: Content, *, role: Role = Role.query) -> list[SignalValue]:
        digest = hashlib.new(self.algorithm, content.data).hexdigest()
        return [SignalValue(self.name, digest)]

    def validate(self, text: str) -> str:
        value = text.strip().lower()
        if not re.fullmatch(rf"[0-9a-f]{{{self.hex_length}}}", value):
            raise SignalValueError(
                f"expected {self.hex_length} hexadecimal digits", signal_type=self.name, value=text
            )
        return value

    def distance(self, a: str, b: str) -> int:
        return 0 if a == b else 1

    def examples(self) -> list[str]:
        return [hashlib.new(self.algorithm, s).hexdigest() for s in (b"", b"amber")]


class Sha256Signal(_DigestSignal):
    """SHA-256 of the bytes exactly as received."""

    name = "sha256"
    version = 1
    algorithm = "sha256"
    hex_length = 64


class Md5Signal(_DigestSignal):
    """MD5 of the bytes as received (for exchanging with banks that only have MD5)."""

    name = "md5"
    version = 1
    algorithm = "md5"
    hex_length = 32
