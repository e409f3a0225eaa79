"""Peppered hashing: the secret is HMAC-SHA256'd with a pepper from Secrets Manager, then hashed by a
scheme (Argon2id, the only one configured).

The PHC string names its scheme and carries its parameters, and the item records the pepper version, so
the scheme, its parameters and the pepper can all change later without invalidating existing keys: every
scheme a ``Hasher`` holds verifies, its first hashes, and a key verified under anything but the first
scheme, its parameters and the current pepper is re-hashed on its next use. All verification goes through
``Hasher.verify``.
"""

import functools
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

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


class Scheme(Protocol):
    """A password-hashing scheme over PHC strings ("$<identifier>$..."): what ``Hasher`` holds."""

    identifier: str  # the PHC string's first field: "argon2id"

    def hash(self, data: bytes) -> str: ...

    def verify(self, phc_hash: str, data: bytes) -> bool:
        """True when ``data`` matches, False when not; raises when the hash is corrupt."""
        ...

    def needs_rehash(self, phc_hash: str) -> bool:
        """True when this scheme's hash was made with other parameters than its own."""
        ...


class Argon2id:
    identifier = "argon2id"

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
        self.needs_rehash = functools.lru_cache(maxsize=4096)(self._argon2.check_needs_rehash)

    def hash(self, data: bytes) -> str:
        return self._argon2.hash(data)

    def verify(self, phc_hash: str, data: bytes) -> bool:
        try:
            return self._argon2.verify(phc_hash, data)
        except VerifyMismatchError:
            return False


class UnknownScheme(ValueError):
    """A stored hash names no scheme the hasher holds: the caller treats it as a fault. Never carries the hash."""


class Hasher:
    """Schemes in order: the first hashes new secrets, each verifies its own hashes."""

    def __init__(self, schemes: Sequence[Scheme]):
        if not schemes:
            raise ValueError("a Hasher needs at least one scheme")
        self._first = schemes[0]
        self._schemes = {scheme.identifier: scheme for scheme in schemes}

    def hash(self, secret: str, pepper: bytes) -> str:
        return self._first.hash(_peppered(secret, pepper))

    def verify(self, phc_hash: str, secret: str, pepper: bytes) -> bool:
        """True when the secret matches. A corrupt hash, or one of no scheme held here, raises: the caller
        treats that as a fault."""
        return self._scheme_of(phc_hash).verify(phc_hash, _peppered(secret, pepper))

    def needs_rehash(self, phc_hash: str) -> bool:
        """True when the hash was made by another scheme than the first, or with other parameters."""
        scheme = self._scheme_of(phc_hash)
        return scheme is not self._first or scheme.needs_rehash(phc_hash)

    def _scheme_of(self, phc_hash: str) -> Scheme:
        identifier = phc_hash.split("$", 2)[1] if phc_hash.startswith("$") and phc_hash.count("$") >= 2 else ""
        if identifier not in self._schemes:
            shown = identifier if re.fullmatch(r"[a-z0-9-]{1,32}", identifier) else "(unreadable)"
            raise UnknownScheme(f"the stored hash's scheme {shown} is not one this hasher holds")
        return self._schemes[identifier]


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
