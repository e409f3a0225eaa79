"""Peppered Argon2id: the secret is HMAC-SHA256'd with a pepper from Secrets Manager, then hashed.

The PHC string carries the Argon2 parameters and the item records the pepper version, so both can
change later without invalidating existing keys. All verification goes through ``Hasher.verify``.
"""

import functools
import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import VerifyMismatchError
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError


class PepperUnavailable(RuntimeError):
    """The pepper secret cannot be read or lacks the version asked for. Never carries a pepper."""


class PepperVersionMissing(PepperUnavailable):
    """The pepper secret was read, and has no (usable) value for the version asked for."""


@dataclass(frozen=True)
class Argon2Params:
    memory_kib: int
    time_cost: int
    parallelism: int


def _peppered(secret: str, pepper: bytes) -> bytes:
    return hmac.new(pepper, secret.encode("ascii"), hashlib.sha256).digest()


SALT_BYTES, HASH_BYTES = 16, 32


class Hasher:
    def __init__(self, params: Argon2Params):
        self._argon2 = PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=HASH_BYTES,
            salt_len=SALT_BYTES,
            type=Type.ID,
        )
        # Asked on every allowed call, of the few hashes a container sees: parse each once.
        self._needs_rehash = functools.lru_cache(maxsize=4096)(self._argon2.check_needs_rehash)

    def hash(self, secret: str, pepper: bytes) -> str:
        return self._argon2.hash(_peppered(secret, pepper))

    def verify(self, phc_hash: str, secret: str, pepper: bytes) -> bool:
        """True when the secret matches. A corrupt hash raises: the caller treats that as a fault."""
        try:
            return self._argon2.verify(phc_hash, _peppered(secret, pepper))
        except VerifyMismatchError:
            return False

    def needs_rehash(self, phc_hash: str) -> bool:
        """True when the hash was made with other Argon2 parameters than this hasher's."""
        return self._needs_rehash(phc_hash)


class PepperRing:
    """Pepper versions from the pepper secret: ``{"current": "v1", "v1": "<pepper>", ...}``.

    Read through powertools' parameters cache; a version this container has not seen yet (a rotation
    happened since the last read) forces one fresh read before giving up.
    """

    def __init__(self, secret_arn: str, provider: SecretsProvider, max_age: int):
        self._secret_arn = secret_arn
        self._provider = provider
        self._max_age = max_age
        self._parsed: tuple[str, dict] | None = None  # the last secret string read, and its ring

    def current(self) -> tuple[str, bytes]:
        ring = self._read(force=False)
        version = ring["current"]
        return version, self._pepper(ring, version)

    def get(self, version: str) -> bytes:
        ring = self._read(force=False)
        if version not in ring:
            ring = self._read(force=True)
        return self._pepper(ring, version)

    def has(self, version: str) -> bool:
        """Whether the ring holds ``version`` (read afresh before saying no); PepperUnavailable if unreadable."""
        try:
            self.get(version)
        except PepperVersionMissing:
            return False
        return True

    def _read(self, force: bool) -> dict:
        try:
            raw = self._provider.get(self._secret_arn, max_age=self._max_age, force_fetch=force)
        except GetParameterError as error:  # botocore's message: the error code, never the value
            raise PepperUnavailable(f"pepper secret could not be read: {error}") from None
        if self._parsed is not None and self._parsed[0] is raw:  # powertools' cached value: parsed already
            return self._parsed[1]
        try:
            ring = json.loads(raw)
        except (TypeError, ValueError):  # from None: a JSONDecodeError holds the whole document
            raise PepperUnavailable("pepper secret is not a JSON object") from None
        if not isinstance(ring, dict) or not _is_version_name(ring.get("current")):
            raise PepperUnavailable('pepper secret has no "current" version name (like "v1")')
        self._parsed = (raw, ring)
        return ring

    @staticmethod
    def _pepper(ring: dict, version: str) -> bytes:
        pepper = ring.get(version) if _is_version_name(version) and version != "current" else None
        if not isinstance(pepper, str) or len(pepper) < 32:
            shown = repr(version) if _is_version_name(version) else "(not a version name)"
            raise PepperVersionMissing(f"pepper version {shown} is missing or shorter than 32 characters")
        return pepper.encode("utf-8")


def _is_version_name(value: object) -> bool:
    """A short name like "v2"; anything else is never echoed, as it might be a pepper pasted there."""
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9._-]{1,32}", value) is not None
