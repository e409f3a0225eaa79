"""A second hashing scheme for the tests: the standard library's scrypt, in a PHC string of its own. It stands
for the scheme keys were hashed with before a move to Argon2id (or after one, to whatever comes next)."""

import base64
import hashlib
import hmac
import os


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


class Scrypt:
    identifier = "scrypt"

    def __init__(self, log_n: int = 14, r: int = 8, p: int = 1):
        self._params = f"ln={log_n},r={r},p={p}"
        self._cost = {"n": 2**log_n, "r": r, "p": p}

    def hash(self, data: bytes) -> str:
        salt = os.urandom(16)
        digest = hashlib.scrypt(data, salt=salt, dklen=32, **self._cost)
        return f"$scrypt${self._params}${_b64(salt)}${_b64(digest)}"

    def verify(self, phc_hash: str, data: bytes) -> bool:
        _, identifier, params, salt, digest = phc_hash.split("$")  # anything else raises: a corrupt hash
        fields = dict(field.split("=") for field in params.split(","))
        cost = {"n": 2 ** int(fields["ln"]), "r": int(fields["r"]), "p": int(fields["p"])}
        expected = _unb64(digest)
        return hmac.compare_digest(hashlib.scrypt(data, salt=_unb64(salt), dklen=len(expected), **cost), expected)

    def needs_rehash(self, phc_hash: str) -> bool:
        return phc_hash.split("$")[2] != self._params
