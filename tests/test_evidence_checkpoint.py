"""Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes, and the key files."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from amber.errors import UserError
from amber.evidence.checkpoint import (
    KEY_FILE,
    VERIFIER_KEY_FILE,
    Checkpoint,
    CheckpointError,
    Signer,
    VerifierKey,
    load_or_create_key,
    open_note,
    open_signed_note,
    sign_note,
)

ROOT = hashlib.sha256(b"a root").digest()
CHECKPOINT = Checkpoint("amber.example/vault", 42, ROOT)

# The example key pair and note of golang.org/x/mod/sumdb/note, the reference implementation
# of c2sp.org/signed-note: the package documentation (note.go) and note_test.go (TestSign,
# TestOpen, TestNewVerifier) at https://go.googlesource.com/mod/+/refs/heads/master/sumdb/note.
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SEED = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"  # from "PRIVATE+KEY+PeterNeumann+…"
PETER_SIG = (
    "— PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_KEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
ENOCH_SIG = (
    "— EnochRoot "
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)

# A real checkpoint of the Go checksum database, signed by its production key.
# The note: BenchmarkCheckpointUnsafe in transparency-dev/trillian-tessera,
# internal/parse/parse_test.go (it omits the final newline, restored here).
# The verifier key: pinned in the Go toolchain, golang/go src/cmd/go/internal/modfetch/key.go.
SUMDB_KEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_NOTE = (
    "go.sum database tree\n"
    "31700353\n"
    "qINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=\n"
    "\n"
    "— sum.golang.org "
    "Az3grnmrIUEDFqHzAElIQCPNoRFRAAdFo47fooyWKMHb89k11GJh5zHIfNCOBmwn/C3YI8oW9/C8DJ87F61QqspBYwM=\n"
)


def _signer(name: str = "amber.example/vault") -> Signer:
    return Signer(Ed25519PrivateKey.generate(), name)


def _peter() -> Signer:
    seed = base64.b64decode(PETER_SEED)
    assert seed[0] == 0x01
    return Signer(Ed25519PrivateKey.from_private_bytes(seed[1:]), "PeterNeumann")


# -- checkpoint bodies -----------------------------------------------------------------------


def test_body_format() -> None:
    root64 = base64.b64encode(ROOT).decode()
    assert CHECKPOINT.body() == f"amber.example/vault\n42\n{root64}\n"
    with_ext = Checkpoint("o", 0, ROOT, ("ext one", "ext two"))
    assert with_ext.body() == f"o\n0\n{root64}\next one\next two\n"
    assert Checkpoint.parse(with_ext.body()) == with_ext
    assert Checkpoint.parse(CHECKPOINT.body()) == CHECKPOINT


def _root64(data: bytes = ROOT) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    "body",
    [
        f"o\n42\n{_root64()}",  # no final newline
        "o\n42\n",  # no root line
        f"\n42\n{_root64()}\n",  # empty origin
        f"o\n042\n{_root64()}\n",  # leading zero
        f"o\n-1\n{_root64()}\n",
        f"o\n+1\n{_root64()}\n",
        f"o\n 1\n{_root64()}\n",
        f"o\n1 \n{_root64()}\n",
        f"o\n４２\n{_root64()}\n",  # non-ASCII digits
        f"o\n{2**64}\n{_root64()}\n",  # beyond uint64
        f"o\n0x2a\n{_root64()}\n",
        "o\n42\nnot base64!\n",
        f"o\n42\n{_root64()[:-1]}\n",  # padding missing
        f"o\n42\n{_root64()[:-2]}9=\n",  # non-canonical trailing bits
        f"o\n42\n{_root64(ROOT[:16])}\n",  # 16-byte root
        f"o\n42\n{_root64(ROOT + b'x')}\n",  # 33-byte root
        f"o\n42\n{_root64()}\n\n",  # empty extension line
        f"o\r\n42\n{_root64()}\n",  # control character
        f"o\n42\r\n{_root64()}\n",
    ],
)
def test_parse_rejects_malformed_bodies(body: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.parse(body)


def test_checkpoint_rejects_bad_fields() -> None:
    for origin, size, root in [
        ("", 1, ROOT),
        ("a\nb", 1, ROOT),
        ("o", -1, ROOT),
        ("o", 2**64, ROOT),
        ("o", 1, ROOT[:31]),
    ]:
        with pytest.raises(CheckpointError):
            Checkpoint(origin, size, root)
    with pytest.raises(CheckpointError):
        Checkpoint("o", 1, ROOT, ("",))
    assert issubclass(CheckpointError, UserError)


# -- signing and opening ---------------------------------------------------------------------


def test_sign_open_round_trip() -> None:
    signer = _signer()
    note = signer.sign(CHECKPOINT)
    body, signature = note.split("\n\n")
    assert body + "\n" == CHECKPOINT.body()
    match = re.fullmatch(r"— amber\.example/vault ([A-Za-z0-9+/]+=*)\n", signature)
    assert match is not None
    raw = base64.b64decode(match.group(1))
    assert len(raw) == 4 + 64
    assert raw[:4] == signer.verifier.key_id
    assert open_note(note, verifier_key=signer.verifier_key()) == CHECKPOINT
    assert open_note(note.encode(), verifier_key=signer.verifier_key()) == CHECKPOINT


def test_every_changed_character_is_rejected() -> None:
    signer = _signer()
    note = signer.sign(CHECKPOINT)
    key = signer.verifier_key()
    for position, ch in enumerate(note):
        changed = note[:position] + chr(ord(ch) ^ 1) + note[position + 1 :]
        with pytest.raises(CheckpointError):
            open_note(changed, verifier_key=key)
        removed = note[:position] + note[position + 1 :]
        with pytest.raises(CheckpointError):
            open_note(removed, verifier_key=key)


def test_every_changed_byte_is_rejected() -> None:
    signer = _signer()
    data = signer.sign(CHECKPOINT).encode()
    key = signer.verifier_key()
    for position in range(len(data)):
        for bit in (0x01, 0x80):
            changed = bytearray(data)
            changed[position] ^= bit
            with pytest.raises(CheckpointError):
                open_note(bytes(changed), verifier_key=key)


def test_wrong_key_is_rejected() -> None:
    note = _signer().sign(CHECKPOINT)
    with pytest.raises(CheckpointError, match="no signature by key"):
        open_note(note, verifier_key=_signer().verifier_key())  # same name, other key
    key = Ed25519PrivateKey.generate()
    renamed = Signer(key, "other.example/log")
    with pytest.raises(CheckpointError, match="no signature by key"):
        open_note(
            Signer(key, "amber.example/vault").sign(CHECKPOINT), verifier_key=str(renamed.verifier)
        )


def test_note_signed_by_two_keys_opens_with_either() -> None:
    first, second = _signer("first.example"), _signer("second.example")
    note = sign_note(CHECKPOINT.body(), [first, second])
    assert note.count("\n— ") == 2
    assert open_note(note, verifier_key=first.verifier_key()) == CHECKPOINT
    assert open_note(note, verifier_key=second.verifier_key()) == CHECKPOINT
    assert open_note(note, verifier_key=first.verifier_key()) == CHECKPOINT
    with pytest.raises(CheckpointError):
        open_note(note, verifier_key=_signer("third.example").verifier_key())


def test_an_invalid_signature_by_the_known_key_rejects_the_note() -> None:
    good, other = _signer("a.example"), _signer("b.example")
    forged = good.signature_line("something else\n")
    note = sign_note(CHECKPOINT.body(), [good, other]) + forged
    with pytest.raises(CheckpointError, match="invalid signature"):
        open_note(note, verifier_key=good.verifier_key())
    assert open_note(note, verifier_key=other.verifier_key()) == CHECKPOINT


def test_too_many_signatures_are_rejected() -> None:
    signer = _signer()
    line = signer.signature_line(CHECKPOINT.body())
    assert open_note(CHECKPOINT.body() + "\n" + line * 100, verifier_key=signer.verifier_key())
    with pytest.raises(CheckpointError, match="more than 100"):
        open_note(CHECKPOINT.body() + "\n" + line * 101, verifier_key=signer.verifier_key())


def test_sign_note_rejects_bad_text() -> None:
    signer = _signer()
    for text in ["no final newline", "bell\x07\n", "\ud800\n"]:
        with pytest.raises(CheckpointError):
            sign_note(text, [signer])
    with pytest.raises(CheckpointError):
        sign_note("text\n", [])


@pytest.mark.parametrize("name", ["", "a b", "a+b", "tab\there", "nbsp\u00a0here"])
def test_invalid_key_names_are_refused(name: str) -> None:
    with pytest.raises(CheckpointError):
        Signer(Ed25519PrivateKey.generate(), name)


# -- verifier keys ---------------------------------------------------------------------------


def test_verifier_key_format() -> None:
    signer = _signer()
    public = signer.verifier.public_key
    key = signer.verifier_key()
    name, key_id, encoded = key.split("+", 2)
    assert name == "amber.example/vault"
    assert re.fullmatch(r"[0-9a-f]{8}", key_id)
    assert base64.b64decode(encoded) == b"\x01" + public
    assert bytes.fromhex(key_id) == hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]
    assert VerifierKey.parse(key) == signer.verifier
    assert str(VerifierKey.parse(key)) == key


def test_go_example_keys() -> None:
    assert _peter().verifier_key() == PETER_KEY
    assert str(VerifierKey.parse(ENOCH_KEY)) == ENOCH_KEY


def test_mangled_verifier_keys_are_refused() -> None:
    """As TestNewVerifier in x/mod/sumdb/note: every proper substring and every single
    incremented byte of the example key fails."""
    data = PETER_KEY.encode()
    for i in range(len(data) + 1):
        for j in range(i + 1, len(data) + 1):
            if (i, j) != (0, len(data)):
                with pytest.raises(CheckpointError):
                    VerifierKey.parse(data[i:j].decode())
    for i in range(len(data)):
        changed = bytearray(data)
        changed[i] += 1
        with pytest.raises(CheckpointError):
            VerifierKey.parse(changed.decode())
    for bad in [
        # Wrong key length and unknown algorithm, each with an adjusted key ID (upstream).
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ]:
        with pytest.raises(CheckpointError):
            VerifierKey.parse(bad)


# -- published examples ----------------------------------------------------------------------


def test_go_example_note_verifies_and_signing_reproduces_it() -> None:
    note = GO_TEXT + "\n" + PETER_SIG
    assert open_signed_note(note, verifier_key=PETER_KEY) == GO_TEXT
    # Ed25519 is deterministic (RFC 8032): the published seed gives the published note.
    assert sign_note(GO_TEXT, [_peter()]) == note
    with pytest.raises(CheckpointError):
        open_signed_note(note.replace("cryptography", "cryptographY"), verifier_key=PETER_KEY)
    # It is a signed note, not a checkpoint.
    with pytest.raises(CheckpointError, match="origin, size and root"):
        open_note(note, verifier_key=PETER_KEY)


def test_go_example_doubly_signed_note_opens_with_either_key() -> None:
    note = GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert open_signed_note(note, verifier_key=PETER_KEY) == GO_TEXT
    assert open_signed_note(note, verifier_key=ENOCH_KEY) == GO_TEXT


@pytest.mark.parametrize(
    "message",
    [
        # The malformed notes of TestOpen in x/mod/sumdb/note.
        GO_TEXT,
        GO_TEXT + "\n",
        GO_TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + GO_TEXT + "\n" + PETER_SIG,
        GO_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name")[:-1],
        GO_TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        GO_TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:],  # invalid signature
    ],
)
def test_go_malformed_notes_are_rejected(message: str) -> None:
    with pytest.raises(CheckpointError):
        open_signed_note(message, verifier_key=PETER_KEY)
    with pytest.raises(CheckpointError):
        open_signed_note(b"\xff" + message.encode(), verifier_key=PETER_KEY)


def test_sum_golang_org_checkpoint_verifies() -> None:
    checkpoint = open_note(SUMDB_NOTE, verifier_key=SUMDB_KEY)
    assert checkpoint.origin == "go.sum database tree"
    assert checkpoint.size == 31700353
    assert checkpoint.root == base64.b64decode("qINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs=")
    with pytest.raises(CheckpointError):
        open_note(SUMDB_NOTE.replace("31700353", "31700354"), verifier_key=SUMDB_KEY)


# -- key files -------------------------------------------------------------------------------


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run with umask 000, so only the modes amber asks for protect the key."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("open_umask")
def test_key_file_is_created_owner_only_and_loaded_again(tmp_path: Path) -> None:
    directory = tmp_path / "vault" / "keys"
    signer = load_or_create_key(directory, name="amber.example/vault")
    assert _mode(directory) == 0o700
    assert _mode(directory / KEY_FILE) == 0o600
    assert sorted(p.name for p in directory.iterdir()) == [KEY_FILE, VERIFIER_KEY_FILE]
    assert (directory / VERIFIER_KEY_FILE).read_text() == signer.verifier_key() + "\n"
    pem = (directory / KEY_FILE).read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    again = load_or_create_key(directory, name="amber.example/vault")
    assert again.verifier_key() == signer.verifier_key()
    assert (directory / KEY_FILE).read_bytes() == pem
    note = again.sign(CHECKPOINT)
    assert open_note(note, verifier_key=signer.verifier_key()) == CHECKPOINT


def test_existing_directory_is_made_owner_only(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o755)
    load_or_create_key(directory, name="n")
    assert _mode(directory) == 0o700


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666, 0o700])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    load_or_create_key(tmp_path, name="n")
    (tmp_path / KEY_FILE).chmod(mode)
    with pytest.raises(CheckpointError, match="chmod 600"):
        load_or_create_key(tmp_path, name="n")
    (tmp_path / KEY_FILE).chmod(0o400)
    load_or_create_key(tmp_path, name="n")


def test_malformed_key_files_are_refused(tmp_path: Path) -> None:
    key_file = tmp_path / KEY_FILE
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    encrypted = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    for content in [b"", b"not a key\n", ec_key, encrypted]:
        key_file.unlink(missing_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, content)
        os.close(fd)
        with pytest.raises(CheckpointError):
            load_or_create_key(tmp_path, name="n")


def test_symlinked_key_file_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    load_or_create_key(real, name="n")
    link_dir = tmp_path / "linked"
    link_dir.mkdir(mode=0o700)
    (link_dir / KEY_FILE).symlink_to(real / KEY_FILE)
    with pytest.raises(CheckpointError):
        load_or_create_key(link_dir, name="n")


def test_verifier_key_file_for_another_key_is_refused(tmp_path: Path) -> None:
    load_or_create_key(tmp_path, name="first.example")
    with pytest.raises(CheckpointError, match=r"first\.example"):
        load_or_create_key(tmp_path, name="second.example")
    (tmp_path / VERIFIER_KEY_FILE).unlink()
    signer = load_or_create_key(tmp_path, name="second.example")
    assert (tmp_path / VERIFIER_KEY_FILE).read_text() == signer.verifier_key() + "\n"
