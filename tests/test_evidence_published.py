"""Checkpoints and keys published outside the vault (issue 12, finding 10).

Whoever controls the vault's folder can drop its newest records with their checkpoints, or
rewrite its log and sign it again; the vault alone is then consistent with itself. A
checkpoint kept elsewhere (a witness, a transparency page, a bag already handed over) and
the key published with it show it: ``amber evidence verify --key KEY --checkpoint FILE|URL``.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from amber.errors import UserError
from amber.evidence.checkpoint import Checkpoint, Signer
from amber.evidence.log import canonical
from amber.evidence.merkle import MerkleTree, leaf_hash
from amber.evidence.vault import Vault
from amber.evidence.verify import verify_vault
from conftest import CliResult, run_cli

OLD = Path(__file__).parent / "data" / "evidence-v1"


def put(vault: Vault, tmp_path: Path, post_id: str) -> None:
    content = f"\xff\xd8 photo of {post_id}".encode()
    media = tmp_path / f"{post_id}.jpg"
    media.write_bytes(content)
    vault.preserve(
        post_id=post_id,
        post=json.dumps({"id": post_id}),
        media=[(0, media.name, media, hashlib.sha256(content).hexdigest())],
        decision={"post_id": post_id, "verdict": "remove", "reasons": []},
        source="posts.jsonl line 1",
        policy="default@abc",
    )


def verify(vault: Path, *args: str | Path) -> CliResult:
    return run_cli("evidence", "verify", "--vault", vault, *args)


def publish(vault: Path, to: Path) -> Path:
    """Copy the vault's newest checkpoint to ``to``, as a witness would keep it."""
    newest = sorted((vault / "log" / "checkpoints").glob("*.txt"))[-1]
    shutil.copyfile(newest, to)
    return to


def resign(vault: Path, lines: list[bytes], key: Ed25519PrivateKey) -> None:
    """What an attacker with write access and a signing key does: write ``lines`` as the
    log and sign a checkpoint for every size, so the vault agrees with itself again."""
    origin = json.loads((vault / "vault.json").read_text())["origin"]
    signer = Signer(key, origin)
    (vault / "log" / "records.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    folder = vault / "log" / "checkpoints"
    shutil.rmtree(folder)
    folder.mkdir()
    tree = MerkleTree(leaf_hash(line) for line in lines)
    for size in range(1, len(lines) + 1):
        note = signer.sign(Checkpoint(origin, size, tree.root(size)))
        (folder / f"{size:012d}.txt").write_text(note)


def records(vault: Path) -> list[bytes]:
    return (vault / "log" / "records.jsonl").read_bytes().split(b"\n")[:-1]


def vault_key(vault: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(
        (vault / "keys" / "checkpoint.key").read_bytes(), password=None
    )
    assert isinstance(key, Ed25519PrivateKey)
    return key


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local web server (127.0.0.1, a free port) serving the folder it returns."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_dropping_the_newest_records_with_their_checkpoints_fails_against_a_published_one(
    tmp_path: Path, served: tuple[str, Path]
) -> None:
    path = tmp_path / "v"
    vault = Vault.open(path)
    for post_id in ("p0", "p1", "p2"):
        put(vault, tmp_path, post_id)
    base, www = served
    publish(path, www / "checkpoint.txt")
    vkey = (path / "keys" / "checkpoint.vkey").read_text().strip()
    ok = verify(path, "--key", vkey, "--checkpoint", f"{base}/checkpoint.txt")
    assert ok.returncode == 0, ok.stderr
    assert "consistent with the published checkpoint of size 4" in ok.stdout

    # Drop the newest two records and their checkpoints: the vault agrees with itself.
    lines = records(path)
    (path / "log" / "records.jsonl").write_bytes(b"".join(x + b"\n" for x in lines[:2]))
    for size in (3, 4):
        (path / "log" / "checkpoints" / f"{size:012d}.txt").unlink()
    assert verify(path).returncode == 0  # the vault alone cannot tell

    for source in (f"{base}/checkpoint.txt", (www / "checkpoint.txt").as_uri()):
        result = verify(path, "--key", vkey, "--checkpoint", source)
        assert result.returncode == 1, result.stdout
        assert f"{source}: the published checkpoint signs 4 records, but the vault's log has " in (
            result.stderr
        )
        assert "only 2: records were removed" in result.stderr
        assert "Traceback" not in result.stderr


def test_a_record_removed_and_resigned_with_the_vault_key_fails_against_a_published_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v"
    vault = Vault.open(path)
    for post_id in ("p0", "p1", "p2"):
        put(vault, tmp_path, post_id)
    published = publish(path, tmp_path / "witnessed.txt")
    vkey = (path / "keys" / "checkpoint.vkey").read_text().strip()
    put(vault, tmp_path, "p3")

    lines = records(path)
    del lines[2]  # p1's preserved record
    resign(path, lines, vault_key(path))  # the key that sits in the vault
    assert verify(path).returncode == 0  # the vault alone cannot tell

    result = verify(path, "--key", vkey, "--checkpoint", published)
    assert result.returncode == 1
    assert (
        f"{published}: the vault's first 4 records do not hash to the published root: "
        "records published at size 4 were changed, removed or reordered"
    ) in result.stderr


def test_a_key_kept_outside_the_vault_cannot_be_replaced_unnoticed(tmp_path: Path) -> None:
    """With the signing key outside, the vault holds only the public key; an attacker who
    rewrites the log must sign with a key of their own, and --key shows it."""
    signing = tmp_path / "secrets" / "signing.key"
    signing.parent.mkdir()
    original = Ed25519PrivateKey.generate()
    signing.write_bytes(
        original.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    signing.chmod(0o600)
    path = tmp_path / "v"
    vault = Vault.open(path, signing_key=signing)
    for post_id in ("p0", "p1"):
        put(vault, tmp_path, post_id)
    assert not (path / "keys" / "checkpoint.key").exists()
    assert verify(path).returncode == 0
    public_pem = tmp_path / "published.pem"
    public_pem.write_bytes(
        original.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert verify(path, "--key", public_pem).returncode == 0

    # The attacker's own key, written into the vault, and the log signed again without p0.
    forged = Ed25519PrivateKey.generate()
    origin = json.loads((path / "vault.json").read_text())["origin"]
    forged_vkey = Signer(forged, origin).verifier_key()
    lines = records(path)
    first = json.loads(lines[0])
    first["verifier_key"] = forged_vkey
    lines = [canonical(first), *lines[2:]]
    resign(path, lines, forged)
    (path / "keys" / "checkpoint.vkey").write_text(forged_vkey + "\n")
    assert verify(path).returncode == 0  # the vault alone cannot tell

    result = verify(path, "--key", public_pem)
    assert result.returncode == 1
    assert "the vault's checkpoints are signed by key" in result.stderr
    assert "not by the key given with --key" in result.stderr


def test_key_forms(tmp_path: Path) -> None:
    """--key takes the verifier key string, a file holding it, a PEM public key, or the
    raw 32-byte key in base64 or hex; each proves the same vault."""
    path = tmp_path / "v"
    vault = Vault.open(path)
    put(vault, tmp_path, "p0")
    published = publish(path, tmp_path / "cp.txt")
    vkey_file = path / "keys" / "checkpoint.vkey"
    vkey = vkey_file.read_text().strip()
    raw = (
        vault_key(path)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        vault_key(path)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for form in (vkey, str(vkey_file), str(pem), base64.b64encode(raw).decode(), raw.hex()):
        result = verify(path, "--key", form, "--checkpoint", published)
        assert result.returncode == 0, (form, result.stderr)
    other = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    result = verify(path, "--key", other.hex(), "--checkpoint", published)
    assert result.returncode == 1 and "not a checkpoint signed by the key given" in result.stderr
    for bad, says in (
        ("not a key", "--key 'not a key'"),
        ("abcd", "--key 'abcd'"),
        (str(path / "keys" / "checkpoint.key"), "a private key"),
    ):
        result = verify(path, "--key", bad)
        assert result.returncode == 2 and says in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_bad_checkpoint_sources_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "v"
    put(Vault.open(path), tmp_path, "p0")
    cases = [
        (str(tmp_path / "nowhere.txt"), 2, "nowhere.txt"),
        ("ftp://example.org/cp.txt", 2, "only file, http and https"),
        ("http://127.0.0.1:9/cp.txt", 3, "cannot fetch"),
    ]
    for source, code, says in cases:
        result = verify(path, "--checkpoint", source)
        assert result.returncode == code and says in result.stderr, (source, result.stderr)
        assert "Traceback" not in result.stderr
    junk = tmp_path / "junk.txt"
    vkey = (path / "keys" / "checkpoint.vkey").read_text().strip()
    for text in ("hello\n", "", "a b\n1\n", "\xff\n"):
        junk.write_text(text)
        for key in ((), ("--key", vkey)):
            result = verify(path, "--checkpoint", junk, *key)
            assert result.returncode == 1 and f"{junk}: not a checkpoint signed by" in (
                result.stderr
            ), (text, result.stderr)
            assert "Traceback" not in result.stderr
    other = tmp_path / "other"
    put(Vault.open(other), tmp_path, "p9")
    foreign = publish(other, tmp_path / "foreign.txt")
    otherkey = (other / "keys" / "checkpoint.vkey").read_text().strip()
    result = verify(path, "--checkpoint", foreign, "--key", otherkey)
    assert result.returncode == 1 and "is a checkpoint of log" in result.stderr


def test_the_signing_key_can_live_outside_the_vault(tmp_path: Path) -> None:
    signing = tmp_path / "signing.key"
    path = tmp_path / "v"
    with pytest.raises(UserError, match="no signing key at"):
        Vault.open(path, signing_key=signing)
    _write_key(signing)
    put(Vault.open(path, signing_key=signing), tmp_path, "p0")
    assert not (path / "keys" / "checkpoint.key").exists()
    assert verify_vault(path).ok
    with pytest.raises(UserError, match="AMBER_SIGNING_KEY"):
        Vault.open(path)  # the key is needed to write, and is not in the vault
    other = tmp_path / "other.key"
    _write_key(other)
    with pytest.raises(UserError, match="does not match this vault's verifier key"):
        Vault.open(path, signing_key=other)
    signing.chmod(0o644)
    with pytest.raises(UserError, match="wider than owner-only"):
        Vault.open(path, signing_key=signing)


def _write_key(path: Path) -> None:
    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def test_scan_and_the_library_take_the_signing_key_from_the_environment(
    tmp_path: Path,
    database: str,
    photo_file: object,
    write_posts: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from amber.engine import open_engine

    signing = tmp_path / "signing.key"
    _write_key(signing)
    known = photo_file(12, "known.jpg")  # type: ignore[operator]
    posts = write_posts([{"id": "p1", "media": [{"path": str(known)}]}])  # type: ignore[operator]
    env = {"AMBER_DB": database, "AMBER_VAULT": str(tmp_path / "vault")}
    assert run_cli("bank", "create", "known", env=env).returncode == 0
    assert run_cli("bank", "add", "known", known, env=env).returncode == 0
    wrong = run_cli("scan", posts, "--signing-key", tmp_path / "nokey", env=env)
    assert wrong.returncode == 2 and "no signing key at" in wrong.stderr  # refused at start
    assert "p1" not in run_cli("decisions", "list", env=env).stdout
    without = run_cli("scan", posts, "--vault", tmp_path / "v2", env=env)
    assert without.returncode == 0  # a new vault keeps its own key, as before
    assert (tmp_path / "v2" / "keys" / "checkpoint.key").exists()
    scanned = run_cli("scan", posts, env={**env, "AMBER_SIGNING_KEY": str(signing)})
    assert scanned.returncode == 0, scanned.stderr
    assert not (tmp_path / "vault" / "keys" / "checkpoint.key").exists()
    assert "p1" in run_cli("decisions", "list", env=env).stdout
    again = run_cli("scan", posts, "--signing-key", signing, env=env)
    assert again.returncode == 0, again.stderr
    missing = run_cli("evidence", "hold", "p1", "--reason", "x", env=env)
    assert missing.returncode == 2 and "AMBER_SIGNING_KEY" in missing.stderr
    monkeypatch.setenv("AMBER_SIGNING_KEY", str(signing))
    with open_engine(db=database, vault=tmp_path / "vault") as engine:
        engine.open_vault().hold("p1", reason="order 1", actor="legal")
    assert verify_vault(tmp_path / "vault").ok


def test_serve_workers_are_given_the_signing_key(
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amber.api.app import SETTINGS_ENV, app_from_env

    signing = tmp_path / "signing.key"
    _write_key(signing)
    settings = {
        "db": database,
        "vault": str(tmp_path / "vault"),
        "signing_key": str(signing),
        "policy": None,
        "media_root": None,
        "max_body": 1 << 20,
    }
    monkeypatch.setenv(SETTINGS_ENV, json.dumps(settings))
    app = app_from_env()
    engine = app.state.engine
    try:
        vault = engine.open_vault()
        assert vault.signer.verifier_key() == (
            (tmp_path / "vault" / "keys" / "checkpoint.vkey").read_text().strip()
        )
        assert not (tmp_path / "vault" / "keys" / "checkpoint.key").exists()
    finally:
        engine.close()


def test_a_vault_made_before_issue_12_still_verifies(tmp_path: Path) -> None:
    path = tmp_path / "v"
    shutil.copytree(OLD / "vault", path)
    (path / "keys" / "checkpoint.key").chmod(0o600)
    (path / "keys").chmod(0o700)
    vkey = (path / "keys" / "checkpoint.vkey").read_text().strip()
    result = verify(path, "--key", vkey, "--checkpoint", OLD / "bag" / "data" / "checkpoint.txt")
    assert result.returncode == 0, result.stderr
    put(Vault.open(path), tmp_path, "new")  # and amber goes on writing to it
    again = verify(path, "--key", vkey, "--checkpoint", OLD / "bag" / "data" / "checkpoint.txt")
    assert again.returncode == 0, again.stderr
