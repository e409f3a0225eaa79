"""One rule, one truth: a template parameter that the code parses again (config.load) is accepted by the code
exactly when CloudFormation accepts it (its AllowedPattern, or its MinValue and MaxValue), and the copy of the
authorizer's timeout in the code is the template's.

Which environment variable a parameter feeds is read from the template (Globals and every function); the table
holds only what the template cannot tell: each parameter's edge cases, and what the code refuses beyond the
template on purpose, with the reason.

CloudFormation matches an AllowedPattern as a Java regular expression against the whole value; re.fullmatch
with re.ASCII reads these patterns the same way (Java's \\s, \\d and \\w are ASCII-only, Python's are not
without re.ASCII).
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from botocore.config import Config as ClientConfig
from botocore.retries.standard import ExponentialBackoff, RetryContext
from hypothesis import given
from hypothesis import strategies as st

from keygate import authorizer_cache, config
from keygate_local.template import load_template
from tests import hypothesis_profiles
from tests.conftest import REQUIRED, references

hypothesis_profiles.load()

TEMPLATE = load_template()
PARAMETERS = TEMPLATE["Parameters"]
CONSTRAINTS = ("AllowedPattern", "MinValue", "MaxValue", "AllowedValues")


def _environments() -> list[dict]:
    """Globals' environment variables, then each resource's own."""
    resources = [spec.get("Properties", {}) for spec in TEMPLATE["Resources"].values()]
    holders = [TEMPLATE["Globals"]["Function"], *resources]
    return [holder.get("Environment", {}).get("Variables", {}) for holder in holders]


def _variables() -> dict[str, set[str]]:
    """Parameter -> the environment variables it reaches a function in, however it is referenced."""
    variables: dict[str, set[str]] = {}
    for environment in _environments():
        for variable, value in environment.items():
            for name in references(value) & set(PARAMETERS):
                variables.setdefault(name, set()).add(variable)
    return variables


VARIABLES = _variables()


def _lists_a_field_twice(text: str) -> bool:
    fields = [entry.split("=")[0].strip() for entry in text.split(";") if entry.strip()]
    return len(set(fields)) < len(fields)


@dataclass(frozen=True)
class Parsed:
    """A parameter the code parses again: what the template cannot tell about it."""

    edges: tuple[str, ...] = ()  # values at the edges of its AllowedPattern, checked on every run
    refused_beyond: Callable[[str], bool] | None = None  # what the code refuses that the pattern cannot say


# Every parameter that reaches a function and that the code parses. A number's range is the template's own
# (MinValue, MaxValue); a pattern's values are drawn from it, with these edges besides.
TABLE: dict[str, Parsed] = {
    "KeyPrefix": Parsed(("kg", "a" * 16, "a" * 17, "KG", "k g", " kg", "kg ", "kg_", "kg-1", "kg\n", "ｋｇ", "ké")),
    "Argon2MemoryKiB": Parsed(),
    "Argon2TimeCost": Parsed(),
    "Argon2Parallelism": Parsed(),
    "RetentionDays": Parsed(),
    "AuthorizerCacheTtl": Parsed(),
    "LastUsedIntervalMinutes": Parsed(),
    "AppSyncCacheTtl": Parsed(),
    "VerifiedKeyCacheSize": Parsed(),
    "CachedStages": Parsed(
        ("rest:a1b2c3d4e5/prod", "rest:a/b, http:c/$default", " rest:a/b ", "  ", "rest:a/b,", ",rest:a/b", ",",
         "rest:a/b,,http:c/d", "rest:a/b , http:c/d", "REST:a/b", "ws:a/b", "rest:a/b/c", "rest:a /b",
         "rest:a/b;http:c/d",
         f"rest:{'a' * 64}/p", f"rest:{'a' * 65}/p", f"rest:a/{'s' * 128}", f"rest:a/{'s' * 129}",
         "\trest:a/b", "rest:a/b\t", "rest:a/b,\thttp:c/d", "rest:a/b\n", "\u00a0rest:a/b")
    ),
    "DefaultKeyApis": Parsed(
        ("a1b2c3d4e5/prod", "a1b2c3d4e5/*", "*/prod", "*/*", " a/b , */prod ", "  ", "a/$default", "a/b,", ",a/b", ",",
         "a/b,,c/d", "a/b/c", "a b/c", "a/b;c/d", "prod", f"{'a' * 64}/p", f"{'a' * 65}/p", f"a/{'s' * 128}",
         f"a/{'s' * 129}", "\ta/b", "a/b\t", "a/b,\tc/d", "a/b\n", "\u00a0a/b")
    ),
    "GitHubPublicKeysUrl": Parsed(
        (config.GITHUB_KEYS_URL, "https://example.com/keys", "http://localhost/x", "http://127.0.0.1:8080/keys",
         "http://localhost", "http://localhost:123456/x", "http://localhost.evil.example/x",
         "http://127.0.0.1@evil.example/", "http://example.com/keys", "file:///etc/passwd", "ftp://example.com/x",
         "HTTPS://example.com/keys", "https://", " https://example.com", "https://example.com/a b",
         "https://example.com\n", "https://exa\u00a0mple.com", "https://example.com/\x00", "https://例え.jp/keys")
    ),
    "AppSyncFieldScopes": Parsed(
        ("Mutation.createOrder=orders:write; Query.orders=orders:read orders:write", "Query.a=b;", " ; Query.a=b ; ",
         ";", "  ", "_T._f=a", "Query.a = b", "Query.a=b  c", "Query.a=*", "Query.orders", "orders=read",
         "Query.orders=", "Query.1x=a", "Query.orders.id=a", "Query.orders=a b!", "Query.a=b=c", "Query.a=x; Query.a=y",
         f"Query.a={'s' * 64}", f"Query.a={'s' * 65}", "Query.a=b\tc", "\tQuery.a=b", "Query.a=b\n", "Bad Field=b",
         "arn:aws:appsync:us-east-1:1:apis/x/types/Query/fields/a=b"),
        refused_beyond=_lists_a_field_twice,  # which scopes would it need? A regular expression cannot see it
    ),
}  # fmt: skip
# Parameters that reach a function but are not compared here, and why.
EXEMPT = {
    "LogLevel": "POWERTOOLS_LOG_LEVEL: powertools reads it, and AllowedValues are its own level names",
    "RouteScopes": "no AllowedPattern: the code's parser is the only rule, so there is nothing to disagree with",
    "PrimaryRegion": "PRIMARY_REGION: the code asks only whether it is set (a regional authorizer writes nothing)",
    "KeysTableName": "KEYS_TABLE: a name the code hands to DynamoDB, never parses",
    "AuditTableName": "AUDIT_TABLE: a name the code hands to DynamoDB, never parses",
    "PepperSecretArn": "PEPPER_SECRET_ARN, rebuilt for this region by the template: handed to Secrets Manager",
}
# Constrained parameters no function sees: CloudFormation alone reads them.
RESOURCES_ONLY = {
    "DemoQuotaPerDay": "the demo usage plan's quota",
    "DemoThrottlingRateLimit": "the demo stages' throttling",
    "DemoThrottlingBurstLimit": "the demo stages' throttling",
    "LogRetentionDays": "each log group's retention",
    "AuthorizerReservedConcurrency": "the authorizer's ReservedConcurrentExecutions",
    "AuthorizerProvisionedConcurrency": "the authorizer alias's ProvisionedConcurrencyConfig",
    "TableDeletionProtection": "a condition of the tables",
    "PepperKmsKey": "a condition of the pepper secret",
    "AuthorizerTraceSubsegments": "a condition that sets POWERTOOLS_TRACE_DISABLED to a constant",
    "AlarmEmail": "the alarm topic's subscription",
    "DeployDemo": "a condition of the demo resources",
    "DeployOperatorViews": "a condition of the dashboard, the Contributor Insights rules and the saved queries",
    "ReplicaRegions": "the global tables' replicas and the pepper secret's",
    "KeysTableStreamArn": "the regional flush's event source",
}
NUMBERS = [name for name in TABLE if PARAMETERS[name]["Type"] == "Number"]
PATTERNS = [name for name in TABLE if "AllowedPattern" in PARAMETERS[name]]


def variable(name: str) -> str:
    (only,) = VARIABLES[name]
    return only


def code_accepts(name: str, value: str) -> bool:
    """config.load's verdict; any error but ConfigError is a bug, and fails the test."""
    try:
        config.load(REQUIRED | {variable(name): value})
    except config.ConfigError:
        return False
    return True


def template_accepts(name: str, value: str) -> bool:
    return re.fullmatch(PARAMETERS[name]["AllowedPattern"], value, re.ASCII) is not None


def assert_agree(name: str, value: str) -> None:
    sent, accepted = template_accepts(name, value), code_accepts(name, value)
    refused_beyond = TABLE[name].refused_beyond
    if sent and refused_beyond is not None and refused_beyond(value):
        assert not accepted, f"{name}={value!r}: the code must refuse it, as the table says"
    else:
        assert accepted == sent, f"{name}={value!r}: the template {'sends' if sent else 'refuses'} it"


# --- the table covers the template ---


def test_every_parameter_that_reaches_a_function_is_in_the_table_or_exempt_for_a_reason():
    assert set(VARIABLES) == set(TABLE) | set(EXEMPT)
    assert not set(TABLE) & set(EXEMPT)


def test_every_constrained_parameter_no_function_sees_is_listed_with_what_reads_it():
    constrained = {name for name, spec in PARAMETERS.items() if set(CONSTRAINTS) & set(spec)}
    assert constrained - set(VARIABLES) == set(RESOURCES_ONLY)


@pytest.mark.parametrize("name", TABLE)
def test_a_parameter_the_code_parses_reaches_it_verbatim_in_one_variable(name):
    values = [env[key] for env in _environments() for key in env if name in references(env[key])]
    assert all(value == {"Ref": name} for value in values) and len(VARIABLES[name]) == 1
    assert (name in NUMBERS) != (name in PATTERNS), "a number with a range, or a string with a pattern"


@pytest.mark.parametrize("name", TABLE)
def test_an_empty_variable_is_an_unset_one_and_reads_as_the_default(name):
    assert config.load(REQUIRED | {variable(name): ""}) == config.load(REQUIRED)


# --- numbers: the template's range is the code's ---


@pytest.mark.parametrize("name", NUMBERS)
def test_the_code_takes_exactly_the_templates_range(name):
    low, high = PARAMETERS[name].get("MinValue"), PARAMETERS[name].get("MaxValue")
    assert low is not None and high is not None, f"{name}: the code has a range; the template must say it"
    assert code_accepts(name, str(low)) and code_accepts(name, str(high))
    assert not code_accepts(name, str(low - 1)) and not code_accepts(name, str(high + 1))


ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.mark.parametrize("name", NUMBERS)
def test_the_code_reads_a_number_only_as_plain_digits(name):
    """Python's int() also reads "0_8", " 8", "+8" and "٨"; CloudFormation's Number never sends the first or
    the last, and may send a fraction ("8.0"), which no template constraint can refuse: the code refuses them
    all at start, naming the variable, rather than read one value two ways. A leading zero is still a number."""
    low = PARAMETERS[name]["MinValue"]
    for spelling in (f"0_{low}", f" {low}", f"{low} ", f"+{low}", str(low).translate(ARABIC_INDIC), f"{low}.0"):
        assert not code_accepts(name, spelling), spelling
    assert code_accepts(name, f"0{low}")


# --- patterns: the code accepts what the template sends, and refuses what it refuses ---

# Characters that are the edge of one of the patterns: separators, a space the template refuses, letters
# out of a class; "" deletes.
NEAR = ["", " ", "\t", "\n", "\u00a0", ",", ";", "=", ":", "/", ".", "*", "$", "_", "-", "@", "A", "z", "9", "é"]


@st.composite
def near_misses(draw, pattern: str) -> str:
    """A value the template sends with one character inserted, replaced or deleted."""
    value = draw(st.from_regex(re.compile(pattern, re.ASCII), fullmatch=True))
    at = draw(st.integers(0, len(value)))
    return value[:at] + draw(st.sampled_from(NEAR)) + value[at + draw(st.integers(0, 1)) :]


@pytest.mark.parametrize(("name", "value"), [(name, value) for name in PATTERNS for value in TABLE[name].edges])
def test_the_code_and_the_template_agree_on_each_edge_case(name, value):
    assert_agree(name, value)


@pytest.mark.parametrize("name", PATTERNS)
@hypothesis_profiles.budget(0.25)
@given(data=st.data())
def test_the_code_accepts_every_value_the_template_sends(name, data):
    pattern = re.compile(PARAMETERS[name]["AllowedPattern"], re.ASCII)
    value = data.draw(st.from_regex(pattern, fullmatch=True).filter(bool))
    assert_agree(name, value)


@pytest.mark.parametrize("name", PATTERNS)
@hypothesis_profiles.budget(0.25)
@given(data=st.data())
def test_the_code_refuses_every_near_miss_the_template_refuses(name, data):
    value = data.draw(st.one_of(near_misses(PARAMETERS[name]["AllowedPattern"]), st.text()).filter(bool))
    assert_agree(name, value)


# --- the authorizer's timeout ---

TIMEOUT = TEMPLATE["Resources"]["AuthorizerFunction"]["Properties"]["Timeout"]
CALLS_PER_DECISION = 3  # config.py: a refusal makes two (the key, the pepper), an allow a third


def test_the_codes_copy_of_the_authorizer_timeout_is_the_templates():
    """The rotation's later flush waits it out: a shorter copy would let a cached allow of the old secret live."""
    assert authorizer_cache.AUTHORIZER_TIMEOUT_SECONDS == TIMEOUT


def worst_call_seconds(client: ClientConfig) -> float:
    """Every attempt timing out on connect and on read, and botocore's longest backoff (a throttled call's,
    jitter at its top) before each retry. botocore's new retries (AWS_NEW_RETRIES_2026) would also honour a
    service's x-amz-retry-after, up to 5 s more a retry: not counted."""
    attempts = client.retries["total_max_attempts"]
    throttled = SimpleNamespace(is_throttling_error_from_context=lambda context: True)
    backoff = ExponentialBackoff(random=lambda: 1, throttling_detector=throttled)
    waits = sum(backoff.delay_amount(RetryContext(attempt_number=n)) for n in range(1, attempts))
    return attempts * (client.connect_timeout + client.read_timeout) + waits


def test_the_worst_case_of_a_decisions_aws_calls_ends_inside_the_authorizer_timeout():
    assert CALLS_PER_DECISION * worst_call_seconds(config.AWS_CLIENT_CONFIG) < TIMEOUT
