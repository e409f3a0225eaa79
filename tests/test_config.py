"""Settings from the environment: secure defaults, and a clear error naming a bad variable."""

import pytest

from keygate.config import Config, ConfigError, load
from tests.conftest import REQUIRED


def test_defaults_are_owasp_argon2id_and_the_kg_prefix():
    settings = load(REQUIRED)
    assert settings == Config(keys_table="keys", pepper_secret_arn=REQUIRED["PEPPER_SECRET_ARN"])
    assert (settings.key_prefix, settings.argon2_memory_kib, settings.argon2_time_cost) == ("kg", 19456, 2)


def test_settings_are_read_from_the_environment():
    settings = load(REQUIRED | {"KEY_PREFIX": "acme", "ARGON2_MEMORY_KIB": "65536", "RETENTION_DAYS": "0"})
    assert (settings.key_prefix, settings.argon2_memory_kib, settings.retention_days) == ("acme", 65536, 0)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"KEYS_TABLE": ""}, "KEYS_TABLE"),
        ({"PEPPER_SECRET_ARN": ""}, "PEPPER_SECRET_ARN"),
        ({"KEY_PREFIX": "Has_Upper"}, "KEY_PREFIX"),
        ({"KEY_PREFIX": "a" * 17}, "KEY_PREFIX"),
        ({"ARGON2_MEMORY_KIB": "lots"}, "ARGON2_MEMORY_KIB"),
        ({"ARGON2_MEMORY_KIB": "1024"}, "ARGON2_MEMORY_KIB"),
        ({"ARGON2_TIME_COST": "0"}, "ARGON2_TIME_COST"),
        ({"ARGON2_PARALLELISM": "99"}, "ARGON2_PARALLELISM"),
        ({"RETENTION_DAYS": "-1"}, "RETENTION_DAYS"),
    ],
)
def test_a_bad_setting_fails_at_start_naming_the_variable(overrides, named):
    with pytest.raises(ConfigError, match=named):
        load(REQUIRED | overrides)


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        load(REQUIRED).key_prefix = "other"
