"""What a vault's owner publishes outside the vault, read back: its key and its checkpoints.

A vault alone proves only that it agrees with itself: whoever controls its folder can drop
the newest records with their checkpoints, or rewrite the log and sign it again. A checkpoint
kept elsewhere (a witness, a transparency page, a bag already handed over) and the public
key published with it are what ``amber evidence verify --key KEY --checkpoint FILE|URL``
checks the vault against (docs/evidence.md, "Publishing checkpoints").

A key is given in any of the forms it is published in:

- the verifier key string ``<name>+<key ID>+<base64(0x01 || key)>`` (``keys/checkpoint.vkey``);
- a PEM public key (``openssl pkey -in signing.key -pubout``);
- the raw 32-byte Ed25519 public key in base64 or in hex;

either as the text itself or as a file holding it.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from amber import __version__
from amber.errors import ExternalError, UserError
from amber.evidence.checkpoint import ED25519, CheckpointError, VerifierKey

MAX_CHECKPOINT = 64 * 1024
"""Most bytes read from a checkpoint source: a signed note is a few hundred bytes."""

FETCH_TIMEOUT = 10.0
"""Seconds to wait for a checkpoint URL to answer."""

_VERIFIER_KEY = re.compile(r"[^+\s]+\+[0-9a-fA-F]{8}\+\S+", re.ASCII)
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)


@dataclass(frozen=True, slots=True)
class PublishedKey:
    """An Ed25519 public key from outside the vault; ``name`` only when the form carries one
    (a verifier key string). A nameless key signs under its log's origin, as amber's does."""

    public_key: bytes
    name: str | None = None

    def verifier(self, name: str) -> VerifierKey:
        """This key as a verifier key, named ``name`` unless the key names itself."""
        return VerifierKey(self.name or name, self.public_key)

    def matches(self, verifier: VerifierKey) -> bool:
        """Whether ``verifier`` is this key (and has this key's name, when it has one)."""
        return verifier.public_key == self.public_key and self.name in (None, verifier.name)

    def __str__(self) -> str:
        if self.name is not None:
            return str(VerifierKey(self.name, self.public_key))
        return base64.b64encode(self.public_key).decode("ascii")


def read_key(given: str, *, what: str = "--key") -> PublishedKey:
    """The key ``given`` as text or as a file holding it, in any published form.

    Raises ``UserError`` naming ``what`` and the value when it is none of them.
    """
    path = Path(given)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):  # a key string that is no possible path
        is_file = False
    if not is_file:
        return _parse_key(given.strip(), what=f"{what} {given!r}")
    try:
        data = path.read_bytes()[: MAX_CHECKPOINT + 1]
    except OSError as exc:
        raise UserError(f"{what} {given!r}: cannot read the file ({exc.strerror})") from None
    if data.lstrip().startswith(b"-----BEGIN"):
        return _pem_key(data, what=f"{what} {given!r}")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UserError(f"{what} {given!r}: the file is not a key (not text)") from None
    return _parse_key(text, what=f"{what} {given!r}")


def _pem_key(data: bytes, *, what: str) -> PublishedKey:
    if b"PRIVATE KEY" in data.split(b"\n", 1)[0]:
        raise UserError(
            f"{what} is a private key; give its public half "
            "('openssl pkey -in KEY -pubout' prints it) and keep the private key secret"
        )
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UserError(f"{what} is not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UserError(f"{what} is a PEM public key, but not an Ed25519 key")
    return PublishedKey(
        key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def _parse_key(text: str, *, what: str) -> PublishedKey:
    if _VERIFIER_KEY.fullmatch(text):
        try:
            verifier = VerifierKey.parse(text)
        except CheckpointError as exc:
            raise UserError(f"{what}: {exc.message}") from None
        return PublishedKey(verifier.public_key, verifier.name)
    if _HEX_KEY.fullmatch(text):
        return PublishedKey(bytes.fromhex(text))
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raw = b""
    if len(raw) == 33 and raw[0] == ED25519:
        raw = raw[1:]
    if len(raw) == 32:
        return PublishedKey(raw)
    raise UserError(
        f"{what} is not a key: give the verifier key (<name>+<key ID>+<base64>, as in "
        "keys/checkpoint.vkey), a PEM public key file, or the 32-byte Ed25519 public key "
        "in base64 or hex"
    )


def read_checkpoint(source: str) -> bytes:
    """The bytes of a published checkpoint: a file path, a ``file://`` URL or an
    ``http(s)://`` URL (read with the standard library, at most ``MAX_CHECKPOINT`` bytes).

    Raises ``UserError`` for a missing file, another URL scheme or an oversized source,
    ``ExternalError`` when a web server cannot be reached or refuses.
    """
    parts = urllib.parse.urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return _fetch(source)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UserError(f"--checkpoint {source!r}: a file URL must name a local file")
        path = Path(urllib.request.url2pathname(parts.path))
    elif scheme == "" or len(scheme) == 1:  # a path (or a Windows drive letter)
        path = Path(source)
    else:
        raise UserError(
            f"--checkpoint {source!r}: only file, http and https URLs or a file path are read"
        )
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CHECKPOINT + 1)
    except OSError as exc:
        raise UserError(f"--checkpoint {source!r}: cannot read {path} ({exc.strerror})") from None
    return _bounded(data, source)


def _fetch(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": f"amber/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:
            data: bytes = response.read(MAX_CHECKPOINT + 1)
    except urllib.error.HTTPError as exc:
        raise ExternalError(f"--checkpoint {url!r}: cannot fetch it (HTTP {exc.code})") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ExternalError(f"--checkpoint {url!r}: cannot fetch it ({reason})") from None
    return _bounded(data, url)


def _bounded(data: bytes, source: str) -> bytes:
    if len(data) > MAX_CHECKPOINT:
        raise UserError(
            f"--checkpoint {source!r} is larger than {MAX_CHECKPOINT} bytes: not a checkpoint"
        )
    return data
