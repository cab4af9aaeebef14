"""Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes, signed with Ed25519.

A checkpoint body (https://c2sp.org/tlog-checkpoint) is the log's origin, its tree size in
decimal and its root hash in base64, each line ending in a newline, then optional
extension lines::

    amber.example/vault
    42
    qINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=

A signed note (https://c2sp.org/signed-note, as implemented by golang.org/x/mod/sumdb/note)
is that text, a blank line, and one line per signature::

    — <key name> base64(4-byte key ID || Ed25519 signature of the text)

The key ID is the first four bytes of ``SHA-256(name || 0x0A || 0x01 || public key)``; a
verifier key is written ``<name>+<key ID as 8 hex digits>+base64(0x01 || public key)``.

The signing key lives in a directory the vault owns: ``checkpoint.key`` (PKCS#8 PEM,
unencrypted, mode 0600) and ``checkpoint.vkey`` (the verifier key, to publish). Or it is
kept outside the vault (``use_key``: any path, e.g. from ``AMBER_SIGNING_KEY``), and the
vault holds only ``checkpoint.vkey``: then whoever can write to the vault cannot sign.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from amber.atomic_write import fsync_path
from amber.errors import UserError

KEY_FILE = "checkpoint.key"
"""File name of the private signing key (PKCS#8 PEM, owner-only)."""

VERIFIER_KEY_FILE = "checkpoint.vkey"
"""File name of the verifier key string that goes with ``KEY_FILE``."""

HASH_SIZE = 32
"""Bytes in a checkpoint's root hash (SHA-256)."""

MAX_SIGNATURES = 100
"""Most signature lines a note may carry (golang.org/x/mod/sumdb/note's limit)."""

ED25519 = 0x01
"""The signed-note signature type byte of Ed25519."""

_SIGNATURE_PREFIX = "— "
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)", re.ASCII)
_KEY_ID = re.compile(r"[0-9a-fA-F]{8}", re.ASCII)
_MAX_SIZE = 2**64 - 1
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class CheckpointError(UserError):
    """A checkpoint, signed note, verifier key or key file is malformed or does not verify."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's signed statement of its size and root hash (C2SP tlog-checkpoint body)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "the origin")
        if not 0 <= self.size <= _MAX_SIZE:
            raise CheckpointError(f"tree size {self.size} is not an unsigned 64-bit integer")
        if len(self.root) != HASH_SIZE:
            raise CheckpointError(f"the root hash is {len(self.root)} bytes, not {HASH_SIZE}")
        for line in self.extensions:
            _check_line(line, "an extension line")

    def body(self) -> str:
        """The note text: origin, size, base64 root and extension lines, each ending in ``\\n``."""
        lines = [self.origin, str(self.size), _b64encode(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Read a checkpoint body, strictly. Raises ``CheckpointError`` saying what is wrong."""
        if not body.endswith("\n"):
            raise CheckpointError("a checkpoint body must end with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(
                f"a checkpoint body needs origin, size and root lines; it has {len(lines)} line(s)"
            )
        origin, size_text, root_text, *extensions = lines
        if not _DECIMAL.fullmatch(size_text):
            raise CheckpointError(
                f"tree size {size_text!r} is not a decimal number without leading zeros"
            )
        root = _b64decode(root_text, "the root hash")
        return cls(origin, int(size_text), root, tuple(extensions))


def _check_line(line: str, what: str) -> None:
    if not line:
        raise CheckpointError(f"{what} is empty")
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        raise CheckpointError(f"{what} {line!r} is not valid Unicode text") from None
    if any(ord(ch) < 0x20 for ch in line):
        raise CheckpointError(f"{what} {line!r} holds a control character or newline")


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64 with padding; only the canonical encoding is accepted, so
    no two texts decode to the same bytes."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise CheckpointError(f"{what} {text!r} is not valid base64") from None
    if _b64encode(data) != text:
        raise CheckpointError(f"{what} {text!r} is not canonical base64")
    return data


def _valid_name(name: str) -> bool:
    """Key names are non-empty, with no Unicode space and no ``+`` (c2sp.org/signed-note)."""
    return bool(name) and "+" not in name and not any(ch.isspace() for ch in name)


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID of an Ed25519 key: ``SHA-256(name || 0x0A || 0x01 || key)[:4]``."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ED25519]) + public_key)
    return digest.digest()[:4]


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A named Ed25519 public key, as written ``<name>+<key ID hex>+<base64(0x01 || key)>``."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        if not _valid_name(self.name):
            raise CheckpointError(
                f"key name {self.name!r} must be non-empty, without spaces or '+'"
            )
        if len(self.public_key) != 32:
            raise CheckpointError(f"an Ed25519 public key is 32 bytes, not {len(self.public_key)}")

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID that prefixes this key's signatures."""
        return key_id(self.name, self.public_key)

    def __str__(self) -> str:
        encoded = _b64encode(bytes([ED25519]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Read a verifier key string. Raises ``CheckpointError`` saying what is wrong."""
        name, _, rest = text.partition("+")
        id_text, _, key_text = rest.partition("+")
        if not _valid_name(name):
            raise CheckpointError(f"verifier key {text!r}: key name {name!r} is not valid")
        if not _KEY_ID.fullmatch(id_text):
            raise CheckpointError(
                f"verifier key {text!r}: key ID {id_text!r} is not 8 hexadecimal digits"
            )
        try:
            key = _b64decode(key_text, "the public key")
        except CheckpointError as exc:
            raise CheckpointError(f"verifier key {text!r}: {exc.message}") from None
        if not key or key[0] != ED25519:
            raise CheckpointError(f"verifier key {text!r}: not an Ed25519 (type 0x01) key")
        if len(key) != 33:
            raise CheckpointError(
                f"verifier key {text!r}: an Ed25519 public key is 32 bytes, not {len(key) - 1}"
            )
        verifier = cls(name, key[1:])
        if verifier.key_id != bytes.fromhex(id_text):
            raise CheckpointError(
                f"verifier key {text!r}: key ID {id_text} does not match the name and key "
                f"(expected {verifier.key_id.hex()})"
            )
        return verifier

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        if len(signature) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Signer:
    """An Ed25519 private key with the key name its signatures carry."""

    __slots__ = ("_private_key", "_verifier")

    def __init__(self, private_key: Ed25519PrivateKey, name: str) -> None:
        self._private_key = private_key
        public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._verifier = VerifierKey(name, public)

    @property
    def verifier(self) -> VerifierKey:
        """The public half: name, public key and key ID."""
        return self._verifier

    @property
    def name(self) -> str:
        """The key name written in signature lines."""
        return self.verifier.name

    def __repr__(self) -> str:
        return f"Signer({self.verifier_key()!r})"

    def verifier_key(self) -> str:
        """The verifier key string to publish: ``<name>+<key ID hex>+<base64 key>``."""
        return str(self.verifier)

    def signature_line(self, text: str) -> str:
        """The signature line of this key over note text ``text``, ending in a newline."""
        signature = self._private_key.sign(text.encode("utf-8"))
        return f"{_SIGNATURE_PREFIX}{self.name} {_b64encode(self.verifier.key_id + signature)}\n"

    def sign(self, checkpoint: Checkpoint) -> str:
        """The full signed note of ``checkpoint``: its body, a blank line, this signature."""
        return sign_note(checkpoint.body(), [self])


def sign_note(text: str, signers: Sequence[Signer]) -> str:
    """Sign note text with every signer in turn. Raises ``CheckpointError`` if the text is
    not a valid note text or there is no signer."""
    _check_note_characters(text)
    if not text.endswith("\n"):
        raise CheckpointError("note text must end with a newline")
    if not signers:
        raise CheckpointError("a note needs at least one signature")
    return text + "\n" + "".join(signer.signature_line(text) for signer in signers)


def _check_note_characters(text: str) -> None:
    """Signed notes are UTF-8 without control characters other than newline."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise CheckpointError("the note is not valid UTF-8") from None
    for position, ch in enumerate(text):
        if ord(ch) < 0x20 and ch != "\n":
            raise CheckpointError(f"the note holds control character {ch!r} at position {position}")


def open_signed_note(text: str | bytes, *, verifier_key: str) -> str:
    """Verify a signed note against one verifier key and return its note text.

    ``text`` may be the note's bytes (strict UTF-8). Signatures by other keys are ignored;
    every signature line naming this key (same name and key ID) must verify, and at least
    one must be present. Raises ``CheckpointError`` naming what failed.
    """
    verifier = VerifierKey.parse(verifier_key)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError(f"the note is not valid UTF-8 (byte {exc.start})") from None
    _check_note_characters(text)
    split = text.rfind("\n\n")
    if split < 0:
        raise CheckpointError("the note has no blank line before its signatures")
    body, signatures = text[: split + 1], text[split + 2 :]
    if not signatures.endswith("\n"):
        raise CheckpointError("the note's signature block must end with a newline")
    lines = signatures[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"the note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    message = body.encode("utf-8")
    verified = False
    for number, line in enumerate(lines, start=1):
        if not line.startswith(_SIGNATURE_PREFIX):
            raise CheckpointError(f"signature line {number} does not start with '— '")
        name, _, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
        if not _valid_name(name):
            raise CheckpointError(f"signature line {number}: key name {name!r} is not valid")
        try:
            raw = _b64decode(encoded, "the signature")
        except CheckpointError as exc:
            raise CheckpointError(f"signature line {number}: {exc.message}") from None
        if len(raw) < 5:
            raise CheckpointError(f"signature line {number}: the signature is too short")
        if name != verifier.name or raw[:4] != verifier.key_id:
            continue  # another key's signature: ignored, as the spec requires
        if not verifier.verify(message, raw[4:]):
            raise CheckpointError(
                f"signature line {number}: invalid signature for key {name}+{raw[:4].hex()}"
            )
        verified = True
    if not verified:
        raise CheckpointError(
            f"the note has no signature by key {verifier.name}+{verifier.key_id.hex()}"
        )
    return body


def open_note(text: str | bytes, *, verifier_key: str) -> Checkpoint:
    """Verify a signed checkpoint note against one verifier key and parse its body.

    Raises ``CheckpointError`` naming what failed: the key, the note's form, the
    signature or the checkpoint body.
    """
    return Checkpoint.parse(open_signed_note(text, verifier_key=verifier_key))


def load_or_create_key(directory: Path, *, name: str) -> Signer:
    """The signer kept in ``directory``, created on first use.

    A new key is written as ``KEY_FILE`` (PKCS#8 PEM, mode 0600 from the moment it exists)
    in a directory created with mode 0700, and its verifier key as ``VERIFIER_KEY_FILE``.
    Raises ``CheckpointError`` if the key file's mode is wider than 0600, it is not an
    unencrypted Ed25519 PEM key, or does not match the verifier key file.
    """
    key_path = directory / KEY_FILE
    if not key_path.exists():
        _create_key(directory)
    signer = Signer(_read_key(key_path), name)
    _write_verifier_key(directory / VERIFIER_KEY_FILE, signer)
    return signer


def read_signing_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 signing key in the PEM file ``path`` (kept outside a vault).

    Raises ``CheckpointError`` if there is none, its mode is wider than 0600, or it is not an
    unencrypted Ed25519 PKCS#8 PEM key.
    """
    if not path.exists():
        raise CheckpointError(
            f"no signing key at {path}; create one with 'openssl genpkey -algorithm ed25519 "
            f"-out {path}' and 'chmod 600 {path}', or move a vault's keys/{KEY_FILE} there"
        )
    return _read_key(path)


def use_key(key: Ed25519PrivateKey, directory: Path, *, name: str, source: Path) -> Signer:
    """The signer of a key kept outside the vault whose key directory is ``directory``.

    A new vault gets only the verifier key file. Raises ``CheckpointError`` if the vault's
    verifier key, or a signing key the vault still holds, is another key.
    """
    signer = Signer(key, name)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    vkey_path = directory / VERIFIER_KEY_FILE
    if vkey_path.exists():
        try:
            found = vkey_path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{vkey_path}: cannot read the verifier key ({exc})") from None
        if found != signer.verifier_key():
            raise CheckpointError(
                f"the signing key {source} does not match this vault's verifier key "
                f"{vkey_path} ({found!r}); give the key this vault was created with"
            )
    own = directory / KEY_FILE
    if own.exists() and Signer(_read_key(own), name).verifier_key() != signer.verifier_key():
        raise CheckpointError(
            f"the vault holds its own signing key {own}, which is not the one at {source}"
        )
    _write_verifier_key(vkey_path, signer)
    return signer


def _create_key(directory: Path) -> None:
    """Write a new key file without ever exposing it; keep an existing one if a concurrent
    caller won the race. The directory, which holds only keys, is made owner-only."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    temporary = directory / f".{KEY_FILE}.{secrets.token_hex(8)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        # A hard link never replaces an existing key, and the key appears whole or not at all.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, directory / KEY_FILE)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_path(directory)


def _read_key(path: Path) -> Ed25519PrivateKey:
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot open the signing key ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as key_file:
        info = os.fstat(key_file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointError(f"{path}: the signing key is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & ~0o600:
            raise CheckpointError(
                f"{path}: the signing key has mode {mode:04o}, wider than owner-only 0600; "
                f"restrict it with 'chmod 600 {path}'"
            )
        pem = key_file.read()
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CheckpointError(
            f"{path}: not an unencrypted PKCS#8 PEM private key ({exc})"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{path}: the signing key is not an Ed25519 key")
    return key


def _write_verifier_key(path: Path, signer: Signer) -> None:
    """Write the verifier key file if absent; refuse one that names another key."""
    expected = signer.verifier_key()
    if path.exists():
        try:
            found = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{path}: cannot read the verifier key ({exc})") from None
        if found != expected:
            raise CheckpointError(
                f"{path} holds {found!r}, but the signing key with name {signer.name!r} "
                f"gives {expected!r}"
            )
        return
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    with open(temporary, "w", encoding="utf-8") as out:
        out.write(expected + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    fsync_path(path.parent)
