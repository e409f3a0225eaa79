"""GitHub secret scanning's partner alerts: the signature over the request, its payload, and GitHub's
published public keys. The keys endpoint allows 60 unauthenticated requests an hour per address, and
anyone can send an alert naming an identifier GitHub never published, so a container fetches the keys
once, again when they are an hour old, again for an unknown identifier (GitHub may have just rotated its
key) at most every five minutes, and after a failed fetch not for a minute, verifying with the keys it has
meanwhile. A document with no usable P-256 key counts as a failed fetch: it never empties the keys.

GitHub signs the raw body with ECDSA P-256 / SHA-256 and names the key in ``Github-Public-Key-Identifier``;
``Github-Public-Key-Signature`` is the base64 DER signature. Nothing here sees Lambda or API Gateway.
"""

import base64
import binascii
import json
import re
import time
import unicodedata
import urllib.request
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keygate.leaks import LeakReport

MAX_BODY_BYTES = 1024 * 1024
MAX_ALERTS = 1000
MAX_TOKEN_LENGTH = 1024
MAX_TEXT_LENGTH = 2048  # url, type, source
KEYS_MAX_AGE = 3600.0
REFETCH_AFTER = 300.0  # an unknown identifier fetches the keys again, but not more often than this
RETRY_AFTER_FAILURE = 60.0
_IDENTIFIER = re.compile(r"[0-9a-fA-F]{1,128}")


class Unauthenticated(Exception):
    """The request is not signed by GitHub: unsigned, an unknown key, or a signature that does not match."""


class MalformedAlert(ValueError):
    """The signed body is not GitHub's alert payload; the message names the entry and field."""


class PublicKeysUnavailable(RuntimeError):
    """GitHub's keys could not be fetched or read: a fault, not the caller's doing."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect could lead from https to anywhere: refused
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def fetch_url(url: str, timeout: float = 5.0) -> bytes:
    with _OPENER.open(url, timeout=timeout) as response:  # config allows https (or http to 127.0.0.1) only
        return response.read(MAX_BODY_BYTES + 1)


class GitHubPublicKeys:
    def __init__(
        self, url: str, fetch: Callable[[str], bytes] = fetch_url, clock: Callable[[], float] = time.monotonic
    ):
        self._url = url
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._fetched_at: float | None = None  # the last successful fetch
        self._failed_at: float | None = None  # the last failed one

    def verify(self, body: bytes, key_identifier: str | None, signature: str | None) -> None:
        """Raises Unauthenticated unless ``signature`` is GitHub's over exactly ``body``."""
        if not (isinstance(key_identifier, str) and key_identifier and isinstance(signature, str) and signature):
            raise Unauthenticated("the request is not signed: Github-Public-Key-Identifier and -Signature needed")
        if not _IDENTIFIER.fullmatch(key_identifier):
            raise Unauthenticated("Github-Public-Key-Identifier is not a key identifier")
        try:
            der = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise Unauthenticated("Github-Public-Key-Signature is not base64") from None
        key = self._key(key_identifier.lower())
        if key is None:
            raise Unauthenticated("Github-Public-Key-Identifier names none of GitHub's published keys")
        try:
            key.verify(der, body, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise Unauthenticated("the signature does not match the body") from None

    def _key(self, identifier: str) -> ec.EllipticCurvePublicKey | None:
        now = self._clock()
        age = None if self._fetched_at is None else now - self._fetched_at
        due = age is None or age > KEYS_MAX_AGE or (identifier not in self._keys and age > REFETCH_AFTER)
        if due and (self._failed_at is None or now - self._failed_at > RETRY_AFTER_FAILURE):
            try:
                self._keys, self._fetched_at, self._failed_at = self._load(), now, None
            except PublicKeysUnavailable:
                self._failed_at = now
                if identifier not in self._keys:  # the keys it has (stale or none) cannot verify this one
                    raise
        elif due and identifier not in self._keys and self._fetched_at is None:
            raise PublicKeysUnavailable("GitHub's public keys could not be read a moment ago; not retried yet")
        return self._keys.get(identifier)

    def _load(self) -> dict[str, ec.EllipticCurvePublicKey]:
        try:
            entries = json.loads(self._fetch(self._url))["public_keys"]
            keys = dict(filter(None, (_p256_key(entry) for entry in entries)))
        except Exception as error:  # unreachable, not JSON, not this shape
            raise PublicKeysUnavailable(f"GitHub's public keys could not be read: {type(error).__name__}") from None
        if not keys:
            raise PublicKeysUnavailable("GitHub's public keys document holds no P-256 key")
        return keys


def _p256_key(entry: object) -> tuple[str, ec.EllipticCurvePublicKey] | None:
    """(identifier, key) of a published entry, or None for one that is not a P-256 key: skipped, so one
    odd entry does not stop the others from verifying."""
    try:
        key = serialization.load_pem_public_key(entry["key"].encode("ascii"))
        identifier = entry["key_identifier"]
    except Exception:
        return None
    if not (isinstance(identifier, str) and _IDENTIFIER.fullmatch(identifier)):
        return None
    if not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)):
        return None
    return identifier.lower(), key


def parse_alerts(body: bytes) -> list[LeakReport]:
    """The alerts of a signed body: a JSON array of {token, type, url, source}; other fields are ignored."""
    try:
        alerts = json.loads(body)
    except ValueError:
        raise MalformedAlert("the body is not JSON") from None
    if not isinstance(alerts, list) or not alerts:
        raise MalformedAlert("the body is not a non-empty JSON array of alerts")
    if len(alerts) > MAX_ALERTS:
        raise MalformedAlert(f"the body holds {len(alerts)} alerts, more than {MAX_ALERTS}")
    return [_alert(index, alert) for index, alert in enumerate(alerts)]


def _alert(index: int, alert: object) -> LeakReport:
    if not isinstance(alert, dict):
        raise MalformedAlert(f"alert {index} is not an object")
    token = alert.get("token")
    if not isinstance(token, str) or not 1 <= len(token) <= MAX_TOKEN_LENGTH:
        raise MalformedAlert(f"alert {index}: token must be a string of 1 to {MAX_TOKEN_LENGTH} characters")
    texts = {}
    for field in ("type", "url", "source"):
        value = alert.get(field)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT_LENGTH):
            raise MalformedAlert(f"alert {index}: {field} must be a string of at most {MAX_TEXT_LENGTH} characters")
        texts[field] = _printable(value) if value is not None else None
    return LeakReport(token, url=texts["url"], source=texts["source"], token_type=texts["type"] or "")


def _printable(text: str) -> str:
    """GitHub's text as the audit record, the notification and the log may carry it: control, format and
    line-separator characters (a forged log line, a bidi override) replaced by U+FFFD. Refusing the alert
    instead would leave its key live."""
    return "".join("\ufffd" if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)
