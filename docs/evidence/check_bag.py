"""Verify an amber evidence bag by hand: only hashlib and the cryptography package.

Usage: python check_bag.py BAG_FOLDER [PUBLISHED_VERIFIER_KEY]
(docs/evidence.md explains each step). Exits non-zero on any failure.
"""

import base64
import hashlib
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

data = Path(sys.argv[1]) / "data"
vkey = (data / "checkpoint.vkey").read_text().strip()
if len(sys.argv) > 2 and sys.argv[2] != vkey:
    sys.exit(f"FAIL: the bag's key {vkey} is not the published key")


def sha(b):
    return hashlib.sha256(b).digest()


# 1. The checkpoint must carry a valid signature by the verifier key
#    "<name>+<key id>+<base64(0x01 || public key)>"; other signature lines are ignored.
name, key_id, key = vkey.split("+", 2)
key = base64.b64decode(key)
assert sha(name.encode() + b"\n" + key)[:4].hex() == key_id, "key id does not match the key"


def signed_body(file):
    """The text of a signed note, if it carries a valid signature by the key (else exit)."""
    body, _, signatures = file.read_text().rpartition("\n\n")
    body += "\n"
    signed = False
    for line in signatures.splitlines():
        signer, _, sig = line.removeprefix("\u2014 ").partition(" ")
        sig = base64.b64decode(sig)
        if signer == name and sig[:4].hex() == key_id:
            Ed25519PublicKey.from_public_bytes(key[1:]).verify(sig[4:], body.encode())  # raises
            signed = True
    if not signed:
        sys.exit(f"FAIL: {file.name} has no valid signature by {name}")
    return body


body = signed_body(data / "checkpoint.txt")
origin, size, root = body.splitlines()[:3]
size, root = int(size), base64.b64decode(root)


# 2. Each custody record is in the signed tree (RFC 9162 section 2.1.3.2).
def included(index, size, leaf, proof, root):
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = sha(b"\x01" + p + r)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = sha(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root and index < size


proofs = json.loads((data / "proof.json").read_text())["records"]
lines = (data / "custody.jsonl").read_bytes().split(b"\n")[:-1]
if len(lines) != len(proofs) or not lines:
    sys.exit("FAIL: custody.jsonl and proof.json do not match")
for line, p in zip(lines, proofs):
    proof = [base64.b64decode(h) for h in p["inclusion_proof"]]
    if not included(p["index"], size, sha(b"\x00" + line), proof, root):
        sys.exit(f"FAIL: custody.jsonl line {p['line']} is not in the signed log")

# 3. The files are the ones the signed 'preserved' record names.
record = [json.loads(x) for x in lines if json.loads(x)["event"] == "preserved"][-1]
objects = record["objects"]
expected = {"post.json": objects["post"], "decision.json": objects["decision"],
            "collection.json": objects["collection"]}
for m in objects["media"]:
    [file] = (data / "media").glob(f"{m['position']}-{m['sha256']}.*")
    expected[f"media/{file.name}"] = m["sha256"]
for name_, digest in expected.items():
    if hashlib.sha256((data / name_).read_bytes()).hexdigest() != digest:
        sys.exit(f"FAIL: data/{name_} is not the file the signed record names")

# 4. The bag holds exactly the files amber signed (bag-signature.txt: origin, "amber-bag/1",
#    then "<sha256>  <path>" for every file but the tag manifests). Bags exported before
#    amber signed them have none; their bag-info.txt is unsigned.
bag = data.parent
if (bag / "bag-signature.txt").exists():
    rows = signed_body(bag / "bag-signature.txt").splitlines()
    if rows[:2] != [origin, "amber-bag/1"]:
        sys.exit("FAIL: bag-signature.txt is not a signed list of this log's bag")
    signed = dict(reversed(row.split("  ", 1)) for row in rows[2:])
    held = {p.relative_to(bag).as_posix() for p in bag.rglob("*") if p.is_file()}
    held = {p for p in held if not p.startswith("tagmanifest-") and p != "bag-signature.txt"}
    if held != set(signed):
        sys.exit(f"FAIL: files added or removed after signing: {sorted(held ^ set(signed))}")
    for path, digest in signed.items():
        if hashlib.sha256((bag / path).read_bytes()).hexdigest() != digest:
            sys.exit(f"FAIL: {path} changed after amber signed the bag")
print(f"OK: checkpoint of {origin} (size {size}) signed by {name}; "
      f"{len(lines)} records included; {len(expected)} files match")
