"""Peppered Argon2id hashing and the pepper ring read from Secrets Manager."""

import json

import boto3
import pytest
from argon2 import extract_parameters
from aws_lambda_powertools.utilities.parameters import SecretsProvider

from keygate.hashing import Argon2id, Argon2Params, Hasher, PepperRing, PepperUnavailable, UnknownScheme
from tests.scrypt_scheme import Scrypt

PARAMS = Argon2Params(memory_kib=19456, time_cost=2, parallelism=1)
PEPPER = b"p" * 64
SECRET = "S" * 43


@pytest.fixture(scope="module")
def hasher() -> Hasher:
    return Hasher([Argon2id(PARAMS)])


def test_hash_verifies_with_the_same_secret_and_pepper(hasher):
    assert hasher.verify(hasher.hash(SECRET, PEPPER), SECRET, PEPPER)


def test_wrong_secret_or_wrong_pepper_does_not_verify(hasher):
    phc = hasher.hash(SECRET, PEPPER)
    assert not hasher.verify(phc, "T" * 43, PEPPER)
    assert not hasher.verify(phc, SECRET, b"q" * 64)


def test_phc_string_is_argon2id_with_the_configured_cost_and_holds_no_secret(hasher):
    phc = hasher.hash(SECRET, PEPPER)
    parameters = extract_parameters(phc)
    assert phc.startswith("$argon2id$")
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (19456, 2, 1)
    assert SECRET not in phc and PEPPER.decode() not in phc


def test_hashes_are_salted(hasher):
    assert hasher.hash(SECRET, PEPPER) != hasher.hash(SECRET, PEPPER)


def test_a_hash_made_at_another_cost_still_verifies(hasher):
    cheaper = Hasher([Argon2id(Argon2Params(memory_kib=8192, time_cost=1, parallelism=1))])
    assert hasher.verify(cheaper.hash(SECRET, PEPPER), SECRET, PEPPER)


def test_corrupt_hash_raises_rather_than_passing(hasher):
    with pytest.raises(Exception) as raised:
        hasher.verify("$argon2id$not-a-hash", SECRET, PEPPER)
    assert not isinstance(raised.value, AssertionError)


# --- the pepper ring ---


@pytest.fixture
def secret(aws):
    client = boto3.client("secretsmanager")
    arn = client.create_secret(Name="pepper", SecretString=json.dumps({"current": "v1", "v1": "a" * 64}))["ARN"]
    return client, arn


def _ring(arn: str, max_age: int = 300) -> PepperRing:
    return PepperRing(arn, SecretsProvider(), max_age=max_age)


def test_current_pepper_and_its_version(secret):
    _, arn = secret
    assert _ring(arn).current() == ("v1", b"a" * 64)


def test_a_version_added_by_rotation_is_found_without_waiting_for_the_cache(secret):
    client, arn = secret
    ring = _ring(arn)
    ring.current()  # cached now, for 300 s
    client.put_secret_value(SecretId=arn, SecretString=json.dumps({"current": "v2", "v1": "a" * 64, "v2": "b" * 64}))
    assert ring.get("v2") == b"b" * 64
    assert ring.get("v1") == b"a" * 64


BAD_SECRETS = [
    ("not json", "not a JSON object"),
    (json.dumps(["v1"]), 'no "current"'),
    (json.dumps({"v1": "a" * 64}), 'no "current"'),
    (json.dumps({"current": "v9", "v1": "a" * 64}), "'v9' is missing"),
    (json.dumps({"current": "v1", "v1": "tiny-pepper"}), "'v1' is missing or shorter"),
    (json.dumps({"current": "v1", "v1": 12345}), "'v1' is missing"),
    (json.dumps({"current": "a" * 64, "v1": "b" * 64}), 'no "current" version name'),
]


@pytest.mark.parametrize(("value", "problem"), BAD_SECRETS)
def test_a_bad_pepper_secret_is_refused_without_showing_its_value(secret, value, problem):
    client, arn = secret
    client.put_secret_value(SecretId=arn, SecretString=value)
    with pytest.raises(PepperUnavailable) as raised:
        _ring(arn).current()
    assert problem in str(raised.value)
    for fragment in ("a" * 64, "tiny-pepper", "12345", "not json"):
        assert fragment not in str(raised.value)


def test_an_unreadable_secret_names_the_aws_error(secret):
    client, arn = secret
    client.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    with pytest.raises(PepperUnavailable, match="ResourceNotFoundException"):
        _ring(arn).current()


# --- schemes: the first hashes, every one verifies ---


def test_a_hasher_hashes_with_its_first_scheme_and_verifies_with_each(hasher):
    old = Hasher([Scrypt()])
    both = Hasher([Argon2id(PARAMS), Scrypt()])
    made_before = old.hash(SECRET, PEPPER)
    assert made_before.startswith("$scrypt$") and both.hash(SECRET, PEPPER).startswith("$argon2id$")
    assert both.verify(made_before, SECRET, PEPPER) and not both.verify(made_before, SECRET + "x", PEPPER)
    assert both.verify(hasher.hash(SECRET, PEPPER), SECRET, PEPPER)


def test_a_hash_of_any_scheme_but_the_first_needs_rehash(hasher):
    both = Hasher([Argon2id(PARAMS), Scrypt()])
    assert both.needs_rehash(Hasher([Scrypt()]).hash(SECRET, PEPPER))
    assert not both.needs_rehash(hasher.hash(SECRET, PEPPER))
    cheaper = Hasher([Argon2id(Argon2Params(memory_kib=8192, time_cost=1, parallelism=1))])
    assert both.needs_rehash(cheaper.hash(SECRET, PEPPER))  # the first scheme, at other parameters
    assert Hasher([Scrypt(), Argon2id(PARAMS)]).needs_rehash(hasher.hash(SECRET, PEPPER))  # the order decides


@pytest.mark.parametrize("stored", ["$scrypt$ln=14,r=8,p=1$c2FsdA$ZGlnZXN0", "$bcrypt$x", "plain" + PEPPER.decode()])
def test_a_hash_of_a_scheme_not_held_raises_without_showing_it(hasher, stored):
    with pytest.raises(UnknownScheme) as raised:
        hasher.verify(stored, SECRET, PEPPER)
    assert PEPPER.decode() not in str(raised.value) and "c2FsdA" not in str(raised.value)
    with pytest.raises(UnknownScheme):
        hasher.needs_rehash(stored)


def test_a_hasher_needs_a_scheme():
    with pytest.raises(ValueError, match="at least one scheme"):
        Hasher([])
