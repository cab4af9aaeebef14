"""Verify an amber evidence bag by hand: only hashlib and the cryptography package.

Usage: python check_bag.py BAG_FOLDER   (docs/evidence.md explains each step)
"""

import base64, hashlib, json, sys
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

data = Path(sys.argv[1]) / "data"
sha = lambda b: hashlib.sha256(b).digest()

# 1. The checkpoint's signature, with the verifier key "<name>+<key id>+<base64(0x01 || key)>".
name, key_id, key = (data / "checkpoint.vkey").read_text().strip().split("+", 2)
key = base64.b64decode(key)
body, _, signatures = (data / "checkpoint.txt").read_text().partition("\n\n")
body += "\n"
for line in signatures.splitlines():
    signer, sig = line.removeprefix("\u2014 ").split(" ")
    sig = base64.b64decode(sig)
    if signer == name and sig[:4].hex() == key_id:
        Ed25519PublicKey.from_public_bytes(key[1:]).verify(sig[4:], body.encode())  # raises if bad
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
    return sn == 0 and r == root

proofs = json.loads((data / "proof.json").read_text())["records"]
lines = (data / "custody.jsonl").read_bytes().split(b"\n")[:-1]
for line, p in zip(lines, proofs, strict=True):
    proof = [base64.b64decode(h) for h in p["inclusion_proof"]]
    assert included(p["index"], size, sha(b"\x00" + line), proof, root), p["line"]
print(f"checkpoint of {origin} (size {size}) signed; {len(lines)} records included")
