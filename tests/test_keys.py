"""The key format: generation, parsing, checksum, and what a secret scanner matches."""

import math
import re

import pytest

from keygate import keys
from tests.conftest import mistyped

PREFIX = "kg"


def _key() -> keys.NewKey:
    return keys.generate(PREFIX)


def test_generated_key_parses_back_to_its_id_and_secret():
    new = _key()
    parsed = keys.parse(new.api_key, PREFIX)
    assert (parsed.key_id, parsed.secret) == (new.key_id, new.secret)


def test_key_id_and_secret_carry_the_promised_entropy():
    assert keys.KEY_ID_LENGTH * math.log2(62) >= 64
    assert keys.SECRET_LENGTH * math.log2(62) >= 256
    new = _key()
    assert re.fullmatch(r"[0-9A-Za-z]{16}", new.key_id) and re.fullmatch(r"[0-9A-Za-z]{43}", new.secret)


def test_generated_keys_do_not_repeat():
    generated = [_key() for _ in range(200)]
    assert len({key.key_id for key in generated}) == 200
    assert len({key.secret for key in generated}) == 200


def test_checksum_is_crc32_of_the_body_in_six_base62_characters():
    import zlib

    new = _key()
    body, checksum = new.api_key[:-6], new.api_key[-6:]
    value = 0
    for character in checksum:
        value = value * 62 + keys.BASE62.index(character)
    assert value == zlib.crc32(body.encode())


# Every character of the key id, secret and checksum (position 19 is the separator after the key id).
@pytest.mark.parametrize("position", [p for p in range(3, 3 + 16 + 1 + 43 + 6) if p != 19])
def test_any_changed_character_fails_the_checksum(position):
    api_key = _key().api_key
    replacement = "a" if api_key[position] != "a" else "b"
    altered = api_key[:position] + replacement + api_key[position + 1 :]
    with pytest.raises(keys.MalformedKey):
        keys.parse(altered, PREFIX)


HOSTILE = [
    "",
    " ",
    "kg",
    "kg_",
    "kg__",
    "Bearer kg_x",
    "kg_" + "A" * 16,
    "kg_" + "A" * 16 + "_" + "B" * 48,  # one short
    "kg_" + "A" * 16 + "_" + "B" * 50,  # one long
    "kg_" + "A" * 15 + "_" + "B" * 50,
    "kg_" + "A" * 16 + "__" + "B" * 48,
    "kg_" + "A" * 16 + "_" + "B" * 48 + "\n",
    "kg_" + "Ａ" * 16 + "_" + "B" * 49,  # full-width letters
    "kg_" + "A" * 16 + "_" + "B" * 48 + "é",
    "x" * 10_000,
    "kg_" + "A" * 16 + "_" + "B" * 49 + "\x00",
    None,
    b"kg_AAAA",
    12345,
]


@pytest.mark.parametrize("token", HOSTILE, ids=lambda token: repr(token)[:30])
def test_hostile_input_is_malformed(token):
    with pytest.raises(keys.MalformedKey):
        keys.parse(token, PREFIX)


def test_key_of_another_prefix_is_malformed_even_with_a_valid_checksum():
    other = keys.generate("acme")
    assert keys.parse(other.api_key, "acme").key_id == other.key_id
    with pytest.raises(keys.MalformedKey):
        keys.parse(other.api_key, PREFIX)


def test_malformed_key_error_never_contains_the_presented_string():
    api_key = _key().api_key
    broken = mistyped(api_key)
    with pytest.raises(keys.MalformedKey) as raised:
        keys.parse(broken, PREFIX)
    assert broken not in str(raised.value) and broken[3:19] not in str(raised.value)


def test_repr_never_shows_the_secret():
    new = _key()
    parsed = keys.parse(new.api_key, PREFIX)
    for shown in (repr(new), repr(parsed), str(new), str(parsed)):
        assert new.secret not in shown and new.api_key not in shown
        assert new.key_id in shown


def test_scanner_regex_finds_keys_in_text_and_only_whole_keys():
    pattern = re.compile(keys.scanner_regex(PREFIX))
    first, second = _key().api_key, _key().api_key
    text = f"export KEY={first}\nconfig: {{'key': '{second}'}}\n"
    assert pattern.findall(text) == [first, second]
    assert not pattern.search(first[:-1])
    assert not pattern.search(first + "A")
    assert not pattern.search("x" + first)
