import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from amber.evidence.bag import export_bag
from amber.evidence.vault import Vault

out = Path(sys.argv[1])
now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
vault = Vault.open(out / "vault", clock=lambda: now)
for n, content in enumerate([b"\xff\xd8 first photo", b"\x89PNG second photo"]):
    media = out / f"m{n}.bin"
    media.write_bytes(content)
    vault.preserve(
        post_id=f"p{n}",
        post=json.dumps({"id": f"p{n}"}),
        media=[(0, media.name, media, hashlib.sha256(content).hexdigest())],
        decision={"post_id": f"p{n}", "verdict": "remove", "reasons": []},
        source=f"posts.jsonl line {n + 1}",
        policy="default@abc",
    )
    media.unlink()
vault.hold("p0", reason="case 7", actor="tester")
export_bag(vault, "p0", out / "bag", contact="ti@example.org", organization="Example Platform")
