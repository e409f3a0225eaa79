"""Key format: ``<prefix>_<key_id>_<secret><checksum>``, pure functions, no I/O.

The checksum is CRC32 of everything before it in 6 base62 characters (as GitHub tokens do), so a
mistyped or truncated key is refused before any DynamoDB or Secrets Manager call.
"""

import re
import secrets
import zlib
from dataclasses import dataclass

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_ID_LENGTH = 16  # 95 bits
SECRET_LENGTH = 43  # 256 bits: 43 * log2(62) = 256.03
CHECKSUM_LENGTH = 6  # 62**6 > 2**32
PREFIX_PATTERN = r"[a-z0-9]{1,16}"
KEY_ID_PATTERN = rf"[0-9A-Za-z]{{{KEY_ID_LENGTH}}}"
MAX_KEY_LENGTH = 16 + 1 + KEY_ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH

_KEY = re.compile(
    rf"(?P<prefix>{PREFIX_PATTERN})_(?P<key_id>{KEY_ID_PATTERN})_"
    rf"(?P<secret>[0-9A-Za-z]{{{SECRET_LENGTH}}})(?P<checksum>[0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)


class MalformedKey(ValueError):
    """The presented string is not a well-formed key of this deployment. Never carries the string."""


@dataclass(frozen=True, repr=False)
class ParsedKey:
    key_id: str
    secret: str

    def __repr__(self) -> str:  # the secret must never reach a log through repr()
        return f"ParsedKey(key_id={self.key_id!r}, secret=<redacted>)"


@dataclass(frozen=True, repr=False)
class NewKey:
    key_id: str
    secret: str
    api_key: str

    def __repr__(self) -> str:
        return f"NewKey(key_id={self.key_id!r}, secret=<redacted>, api_key=<redacted>)"


def scanner_regex(prefix: str) -> str:
    """The regular expression a secret scanner uses to find this deployment's keys in text."""
    return rf"\b{re.escape(prefix)}_[0-9A-Za-z]{{{KEY_ID_LENGTH}}}_[0-9A-Za-z]{{{SECRET_LENGTH + CHECKSUM_LENGTH}}}\b"


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def checksum(body: str) -> str:
    """CRC32 of the key's body (everything before the checksum) in 6 base62 characters."""
    value = zlib.crc32(body.encode("ascii"))
    digits = []
    for _ in range(CHECKSUM_LENGTH):
        value, digit = divmod(value, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits))


def generate(prefix: str, key_id: str | None = None) -> NewKey:
    """A fresh key: random key id (or the given one, for a rotation) and secret from ``secrets``,
    checksum appended."""
    key_id = key_id or _random_base62(KEY_ID_LENGTH)
    secret = _random_base62(SECRET_LENGTH)
    body = f"{prefix}_{key_id}_{secret}"
    return NewKey(key_id=key_id, secret=secret, api_key=body + checksum(body))


def parse(token: str, prefix: str) -> ParsedKey:
    """Split and checksum a presented key. Raises MalformedKey; never touches I/O."""
    if not isinstance(token, str) or len(token) > MAX_KEY_LENGTH:
        raise MalformedKey("key is not a string of the expected length")
    match = _KEY.fullmatch(token)
    if match is None:
        raise MalformedKey("key does not have the keygate format")
    if match["prefix"] != prefix:
        raise MalformedKey("key prefix is not this deployment's")
    if match["checksum"] != checksum(token[: match.start("checksum")]):
        raise MalformedKey("key checksum does not match")
    return ParsedKey(key_id=match["key_id"], secret=match["secret"])
