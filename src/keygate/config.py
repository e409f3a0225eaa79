"""Settings from the environment that template.yaml sets, read once into a frozen dataclass.

No other module reads os.environ. Defaults are the secure choice; a bad value fails at import, loudly,
rather than at the first request.
"""

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from botocore.config import Config as BotoConfig

from keygate.apis import API_LIST_PATTERN, parse_api_list
from keygate.authorizer_cache import CACHED_STAGES_PATTERN, CachedStage, parse_cached_stages
from keygate.field_scopes import FIELD_PATTERN, FieldScopes, parse_field_scopes
from keygate.keys import PREFIX_PATTERN
from keygate.routes import SCOPE_PATTERN, RouteScopes, parse_route_scopes
from keygate.verified import DEFAULT_SIZE

# A slow dependency must not hold an authorizer for long: fail fast, and fail closed. At most two
# attempts (total_max_attempts counts the first) of 1 s + 1 s, and standard mode's backoff of at most
# 1 s between them: 5 s per call; a refusal makes at most two (the key, the pepper), an allow a third
# (last_used_at or a re-hash), inside the authorizer's 17 s timeout, so every fault is logged with its
# reason before Lambda would cut the function off.
AWS_CLIENT_CONFIG = BotoConfig(connect_timeout=1, read_timeout=1, retries={"mode": "standard", "total_max_attempts": 2})
# API Gateway's management API allows 10 requests per second per account (burst 40), CreateApiKey 5:
# an admin function retries a throttled call three more times, with standard mode's backoff.
GATEWAY_CLIENT_CONFIG = BotoConfig(
    connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 4}
)


GITHUB_KEYS_URL = "https://api.github.com/meta/public_keys/secret_scanning"
# GitHubPublicKeysUrl's AllowedPattern: https, or http to this machine only (tests serve their own keys); printable
# ASCII without a space (not \S, which Java and Python read differently), so never file:, a control character
# or another scheme.
KEYS_URL_PATTERN = r"^(https://[!-~]+|http://(127\.0\.0\.1|localhost)(:[0-9]{1,5})?/[!-~]*)$"

# AppSyncFieldScopes' AllowedPattern: "Type.field=scope [scope...]" entries separated by ";", spaces around them.
_FIELD_ENTRY = rf"{FIELD_PATTERN} *= *{SCOPE_PATTERN}( +{SCOPE_PATTERN})*"
FIELD_SCOPES_PATTERN = rf"^ *({_FIELD_ENTRY} *)?(; *({_FIELD_ENTRY} *)?)*$"


class ConfigError(ValueError):
    """An environment variable is missing or out of range. Names the variable, never a secret."""


@dataclass(frozen=True)
class Config:
    keys_table: str
    pepper_secret_arn: str
    audit_table: str = ""  # the admin functions write and read it; the authorizer never does
    primary_region: str = ""  # set in a regional stack (PrimaryRegion): it reads replicas and writes no key
    owner_usage_keys_table: str = ""  # the admin functions that change keys; the authorizer never reads it
    key_prefix: str = "kg"
    argon2_memory_kib: int = 19456  # OWASP's argon2id minimum: m=19 MiB, t=2, p=1
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    pepper_cache_seconds: int = 300
    retention_days: int = 90
    default_key_apis: tuple[str, ...] | None = None  # API_ID/STAGE patterns for keys issued without any
    route_scopes: RouteScopes = RouteScopes()  # empty: a valid key may call every route
    verified_key_cache_size: int = DEFAULT_SIZE  # keys whose Argon2 result a container keeps; 0: none
    tracing: bool = True  # powertools' Tracer (X-Ray subsegments); POWERTOOLS_TRACE_DISABLED turns it off
    authorizer_cache_ttl: int = 0  # seconds API Gateway caches an authorizer answer (AuthorizerCacheTtl)
    cached_stages: tuple[CachedStage, ...] = ()  # the stages whose authorizer cache a change flushes
    flush_target: tuple[str, str] | None = None  # (flush function ARN, Scheduler's role) for later flushes
    last_used_interval_minutes: int = 15  # last_used_at is written at most this often per key; 0: never
    appsync_cache_ttl: int = 0  # ttlOverride: seconds AppSync caches an allow (AppSyncCacheTtl); 0: never
    appsync_field_scopes: FieldScopes = FieldScopes()  # empty: an allowed key may read every field
    leak_topic_arn: str = ""  # LeakedKeyTopic: a leaked key's revocation is announced there
    github_keys_url: str = GITHUB_KEYS_URL  # GitHub secret scanning's public keys (GitHubPublicKeysUrl)
    audit_copy_log_group: str = ""  # AuditCopyLogGroup: the audit trail's tamper-evident copy


def _int(env: dict, name: str, default: int, low: int, high: int) -> int:
    """Plain digits, as the template's Number parameter sends a whole number: not int()'s "1_0", " 1" or "١"."""
    raw = env.get(name, "")
    if raw == "":
        return default
    if not re.fullmatch("[0-9]+", raw) or not low <= int(raw) <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def _parsed[T](env: dict, name: str, parse: Callable[[str], T], allowed_pattern: str | None = None) -> T:
    """The parser names a bad entry; the parameter's AllowedPattern, which CloudFormation checks too, then
    refuses what the parser would forgive and the template never sends (a tab, an empty entry)."""
    text = env.get(name, "")
    try:
        parsed = parse(text)
    except ValueError as error:  # InvalidRouteScopes and InvalidFieldScopes included
        raise ConfigError(f"{name}: {error}") from None
    if allowed_pattern is not None and not re.fullmatch(allowed_pattern, text):
        raise ConfigError(f"{name} must match its parameter's AllowedPattern, {allowed_pattern}")
    return parsed


def _flush_target(env: dict) -> tuple[str, str] | None:
    function_arn, role_arn = env.get("FLUSH_FUNCTION_ARN", ""), env.get("FLUSH_SCHEDULE_ROLE_ARN", "")
    return (function_arn, role_arn) if function_arn and role_arn else None


def _keys_url(env: dict, name: str) -> str:
    url = env.get(name) or GITHUB_KEYS_URL
    if not re.fullmatch(KEYS_URL_PATTERN, url):
        raise ConfigError(f"{name} must be an https:// URL (or http://127.0.0.1 for a local test)")
    return url


def _required(env: dict, name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigError(f"{name} is not set")
    return value


def load(env: dict | None = None) -> Config:
    env = os.environ if env is None else env
    prefix = env.get("KEY_PREFIX") or Config.key_prefix
    if not re.fullmatch(PREFIX_PATTERN, prefix):
        raise ConfigError("KEY_PREFIX must be 1 to 16 lower-case letters or digits")
    return Config(
        keys_table=_required(env, "KEYS_TABLE"),
        pepper_secret_arn=_required(env, "PEPPER_SECRET_ARN"),
        audit_table=env.get("AUDIT_TABLE", ""),
        owner_usage_keys_table=env.get("OWNER_USAGE_KEYS_TABLE", ""),
        primary_region=env.get("PRIMARY_REGION", ""),
        key_prefix=prefix,
        argon2_memory_kib=_int(env, "ARGON2_MEMORY_KIB", Config.argon2_memory_kib, 8 * 1024, 256 * 1024),
        argon2_time_cost=_int(env, "ARGON2_TIME_COST", Config.argon2_time_cost, 1, 20),
        argon2_parallelism=_int(env, "ARGON2_PARALLELISM", Config.argon2_parallelism, 1, 16),
        pepper_cache_seconds=_int(env, "PEPPER_CACHE_SECONDS", Config.pepper_cache_seconds, 0, 86400),
        retention_days=_int(env, "RETENTION_DAYS", Config.retention_days, 0, 3650),
        default_key_apis=_parsed(env, "DEFAULT_KEY_APIS", parse_api_list, API_LIST_PATTERN),
        route_scopes=_parsed(env, "ROUTE_SCOPES", parse_route_scopes),  # no AllowedPattern: the parser is the rule
        appsync_cache_ttl=_int(env, "APPSYNC_CACHE_TTL", Config.appsync_cache_ttl, 0, 3600),
        appsync_field_scopes=_parsed(env, "APPSYNC_FIELD_SCOPES", parse_field_scopes, FIELD_SCOPES_PATTERN),
        verified_key_cache_size=_int(env, "VERIFIED_KEY_CACHE_SIZE", Config.verified_key_cache_size, 0, 1_000_000),
        tracing=env.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() not in ("true", "1"),
        authorizer_cache_ttl=_int(env, "AUTHORIZER_CACHE_TTL", Config.authorizer_cache_ttl, 0, 3600),
        cached_stages=_parsed(env, "CACHED_STAGES", parse_cached_stages, CACHED_STAGES_PATTERN),
        flush_target=_flush_target(env),
        last_used_interval_minutes=_int(
            env, "LAST_USED_INTERVAL_MINUTES", Config.last_used_interval_minutes, 0, 7 * 24 * 60
        ),
        leak_topic_arn=env.get("LEAK_TOPIC_ARN", ""),
        github_keys_url=_keys_url(env, "GITHUB_KEYS_URL"),
        audit_copy_log_group=env.get("AUDIT_COPY_LOG_GROUP", ""),
    )
