"""Near-duplicate index for 256-bit PDQ hashes: exact Hamming range search.

``PdqIndex`` (multi-index hashing, persistent, incremental) is the fast path;
``brute_force_search`` is the reference it is tested against.
"""

from amber.index.brute import brute_force_search
from amber.index.mih import IndexCorruptError, PdqIndex

__all__ = ["IndexCorruptError", "PdqIndex", "brute_force_search"]
