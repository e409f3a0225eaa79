"""What this container has already learnt from Argon2: that a presented key matched, or did not match,
the stored hashes it was checked against. So a key pays Argon2 once per container, not once per call.

Entries are keyed by an HMAC of the key under a random key of this container's own: neither a key nor
a secret is held, and a digest means nothing outside this process. An entry names the stored hashes,
and the pepper values (by fingerprint), it was checked against, and counts only while the item read on
this very call still holds those hashes and the pepper secret those values: a rotation, a re-hash or a
pepper version edited or removed makes it useless at once. The cache never decides alone:
every call still reads the item, and its status, expiry, APIs and scopes are checked each time, so a
revoked, disabled or expired key is refused on the next call in every container, cache or not.
"""

import hashlib
import hmac
import secrets
from collections import OrderedDict

from keygate.keys import ParsedKey

# One entry is about 300 bytes (a digest, the PHC string and pepper fingerprint it names, dict and tuple
# overhead): 10,000 matched and 10,000 refused keys hold about 6 MB (docs/benchmarks.md), beside a warm
# authorizer's ~85 MB.
DEFAULT_SIZE = 10_000

# What a secret was checked against: (PHC string, pepper version, the pepper's fingerprint). The pepper's
# value is in it, not only its version's name: a version edited or removed must not keep a key valid.
StoredHash = tuple[str, str, bytes]


class _Lru[V]:
    """A mapping that keeps its ``size`` most recently used entries."""

    def __init__(self, size: int):
        self._size = size
        self._entries: OrderedDict[bytes, V] = OrderedDict()

    def get(self, key: bytes) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: bytes, value: V) -> None:
        if self._size <= 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class VerifiedKeys:
    """Per container: which presented keys matched which stored hash, and which were refused by which
    hashes. ``size`` bounds each of the two; 0 turns the cache off."""

    def __init__(self, size: int = DEFAULT_SIZE):
        self.size = size
        self._digest_key = secrets.token_bytes(32)
        self._matched: _Lru[StoredHash] = _Lru(size)
        self._refused: _Lru[tuple[StoredHash, ...]] = _Lru(size)

    def digest(self, parsed: ParsedKey) -> bytes:
        return hmac.digest(self._digest_key, f"{parsed.key_id}_{parsed.secret}".encode("ascii"), hashlib.sha256)

    def fingerprint(self, pepper: bytes) -> bytes:
        """Tells pepper values apart without holding one."""
        return hmac.digest(self._digest_key, b"pepper:" + pepper, hashlib.sha256)

    def matched(self, digest: bytes) -> StoredHash | None:
        """The stored hash this key last verified against, if any."""
        return self._matched.get(digest)

    def remember_match(self, digest: bytes, stored: StoredHash) -> None:
        self._matched.put(digest, stored)

    def refused_by(self, digest: bytes, checked: tuple[StoredHash, ...]) -> bool:
        """True when this key was refused by exactly these hashes (current, and previous if it was
        checked): then it would be refused again."""
        return self._refused.get(digest) == checked

    def remember_refusal(self, digest: bytes, checked: tuple[StoredHash, ...]) -> None:
        self._refused.put(digest, checked)

    def __len__(self) -> int:
        return len(self._matched) + len(self._refused)
