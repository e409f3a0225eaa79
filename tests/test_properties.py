"""Properties of the authorizer, checked by Hypothesis on generated input (profiles: tests/hypothesis_profiles.py):

1. every generated key parses back to its key id and secret, for every prefix the configuration accepts;
2. every single-character change to a key is refused by its format and checksum, before any AWS call and
   without Argon2;
3. no answer allows a route its key's scopes do not grant, by RouteScopes as docs/reference.md defines it (a
   matcher written here from that text; a REST policy evaluated as IAM does), and each allows what they do;
4. no event, header value or method ARN makes the authorizer answer other than as documented.
"""

import re
import string
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

import botocore.client
import pytest
from argon2 import PasswordHasher
from hypothesis import example, given
from hypothesis import strategies as st

from authorizer.request import AuthRequest, UnrecognizedEvent
from keygate import config, keys
from keygate.authorize import Authorizer, presented_key
from keygate.records import KeyRecord
from keygate.routes import InvalidRouteScopes, parse_route_scopes
from keygate.verified import VerifiedKeys
from tests import hypothesis_profiles
from tests.conftest import REQUIRED, event, invoke
from tests.helpers.authorizer import (
    APPSYNC_API,
    appsync,
    iam_decision,
    iam_evaluator,
    log_records,
    routed,
    shaped,
    websocket,
)

hypothesis_profiles.load()
budget = hypothesis_profiles.budget

# --- the key format, as docs/reference.md describes it: <prefix>_<key_id>_<secret><checksum> ---

ALPHANUMERIC = string.digits + string.ascii_uppercase + string.ascii_lowercase  # base62, in its digits' order
KEY_IDS = st.text(ALPHANUMERIC, min_size=16, max_size=16)
SECRETS = st.text(ALPHANUMERIC, min_size=43, max_size=43)
PREFIXES = st.one_of(st.just("kg"), st.from_regex(r"[a-z0-9]{1,16}", fullmatch=True))  # KeyPrefix's AllowedPattern


def crc32_base62(body: str) -> str:
    """docs/reference.md: "CRC32 of everything before it in 6 base62 characters"."""
    value = zlib.crc32(body.encode())
    return "".join(ALPHANUMERIC[value // 62**power % 62] for power in reversed(range(6)))


def key_from(prefix: str, key_id: str, secret: str) -> str:
    body = f"{prefix}_{key_id}_{secret}"
    return body + crc32_base62(body)


FORMATTED_KEYS = st.builds(
    lambda prefix, key_id, secret: (prefix, key_from(prefix, key_id, secret)), PREFIXES, KEY_IDS, SECRETS
)  # (prefix, key)


# --- 1. generate and parse ---


@budget(1)
@given(prefix=st.one_of(PREFIXES, st.text(max_size=20)), key_id=st.none() | KEY_IDS)
@example(prefix="", key_id=None)  # no KEY_PREFIX: the default, kg
def test_every_generated_key_parses_back_to_its_key_id_and_secret_for_every_configured_prefix(prefix, key_id):
    try:
        configured = config.load(REQUIRED | {"KEY_PREFIX": prefix}).key_prefix
    except config.ConfigError:
        assert not re.fullmatch(r"[a-z0-9]{1,16}", prefix)  # only what KeyPrefix's AllowedPattern refuses
        return
    assert configured == (prefix or "kg") and re.fullmatch(r"[a-z0-9]{1,16}", configured)  # and only what it allows
    new = keys.generate(configured, key_id)
    parsed = keys.parse(new.api_key, configured)
    assert (parsed.key_id, parsed.secret) == (new.key_id, new.secret)
    assert new.key_id == (key_id or new.key_id) and re.fullmatch(r"[0-9A-Za-z]{16}", new.key_id)
    assert re.fullmatch(r"[0-9A-Za-z]{43}", new.secret)
    assert new.api_key == key_from(configured, new.key_id, new.secret)
    assert re.findall(keys.scanner_regex(configured), f"token={new.api_key}.") == [new.api_key]


@budget(1)
@given(ours=PREFIXES, theirs=PREFIXES, key_id=KEY_IDS, secret=SECRETS)
def test_a_key_parses_under_its_own_prefix_only(ours, theirs, key_id, secret):
    api_key = key_from(theirs, key_id, secret)
    if ours == theirs:
        assert (keys.parse(api_key, ours).key_id, keys.parse(api_key, ours).secret) == (key_id, secret)
    else:
        with pytest.raises(keys.MalformedKey):
            keys.parse(api_key, ours)


@budget(1)
@given(data=st.data(), case=FORMATTED_KEYS)
def test_parse_returns_the_parts_of_a_key_and_refuses_anything_else_with_malformed_key_only(data, case):
    prefix, key = case
    token = data.draw(
        st.one_of(
            st.just(key),
            st.text(),
            st.text(ALPHANUMERIC + "_"),
            st.just(key[:-1] + "!"),
            st.just(key + key),
            st.none(),
            st.binary(),
            st.integers(),
            st.just(key.encode()),
            st.lists(st.just(key), max_size=1),
        ),
        label="token",
    )
    try:
        parsed = keys.parse(token, prefix)
    except keys.MalformedKey:
        assert token != key
        return
    assert token == key_from(prefix, parsed.key_id, parsed.secret)


# --- 2. every single-character change is refused ---
# Why each is, and by what. The format fixes the key id at 16, and the secret and checksum at 43 + 6, base62
# characters (ASCII: re's [0-9A-Za-z] holds no other digit or letter), and the prefix must be the deployment's.
# So a deletion or an insertion anywhere, a character outside base62 where base62 goes, a "_" changed or
# one put in, fails the format or the prefix. A prefix character changed fails the comparison (and the
# checksum, which covers the prefix). One base62 character in the body put for another, its other case
# included, changes one byte: an error CRC32 always detects (it detects every error within 32 consecutive
# bits), and 6 base62 digits write a CRC32 one way only (62**6 > 2**32), so the checksum differs. One
# changed in the checksum leaves the body's CRC32 as it was. Only through a header is one change not a
# change: a space or tab put around a key is optional whitespace (RFC 9110), and the key stays the same.

# What a typist, a copy-paste or an attacker might put in place of a key's character: separators, the
# whitespace RFC 9110 does and does not call optional (every character str.strip() takes for whitespace),
# controls, and look-alikes of base62 characters (full-width letters and digits, KELVIN SIGN, dotless i,
# long s, a zero-width space, a BOM).
LOOKALIKES = (
    " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2007\u2028\u2029\u3000\x00\x7f\ufeff\u200b-.~+/=|"
    "Ａｇ０\u212a\u0131\u0130\u017f\xe9\U0001f511"
)
CHARACTERS = st.one_of(
    st.sampled_from(ALPHANUMERIC + "_"),
    st.sampled_from(LOOKALIKES),
    st.characters(),  # any code point but a surrogate
    st.characters(categories=["Cs"]),  # a lone surrogate: what JSON's "\ud800" decodes to
)


@dataclass(frozen=True)
class Edit:
    """One change to a key: a character substituted, deleted or inserted at ``position`` (or two adjacent
    ones transposed, a typist's favourite)."""

    kind: str
    position: int
    character: str = ""

    def apply(self, key: str) -> str:
        before, after = key[: self.position], key[self.position :]
        if self.kind == "substitute":
            return before + self.character + after[1:]
        if self.kind == "delete":
            return before + after[1:]
        if self.kind == "insert":
            return before + self.character + after
        return before + after[1] + after[0] + after[2:]  # transpose position and position + 1


@st.composite
def edits(draw, key: str) -> Edit:
    """A single-character change of ``key``: any character but the one there, its other case included."""
    kind = draw(st.sampled_from(["substitute", "delete", "insert"]))
    last = len(key) if kind == "insert" else len(key) - 1
    first_separator, checksum_start = key.index("_"), len(key) - 6
    edges = {0, first_separator - 1, first_separator, first_separator + 1, first_separator + 17, checksum_start - 1}
    edges |= set(range(checksum_start, len(key) + 1))  # where the format's parts meet, and the checksum
    position = draw(st.one_of(st.integers(0, last), st.sampled_from(sorted(edge for edge in edges if edge <= last))))
    if kind == "delete":
        return Edit(kind, position)
    if kind == "insert":
        return Edit(kind, position, draw(CHARACTERS))
    others = st.one_of(st.just(key[position].swapcase()), CHARACTERS)
    return Edit(kind, position, draw(others.filter(lambda character: character != key[position])))


def every_edit(key: str, alphabet: set[str]) -> list[Edit]:
    """Every substitution and insertion of an alphabet's character at every position, every deletion, and
    every adjacent transposition but one. A transposition inside the body is an error within 16 bits, and
    one inside the checksum leaves the body as it was: both always caught. The last character of the secret
    with the first of the checksum changes both at once, and is caught only with all but about 2**-32
    certainty, which is not a property; so it is left out."""
    checksum_start = len(key) - 6
    changes = [Edit("delete", position) for position in range(len(key))]
    for position in range(len(key) + 1):
        changes += [Edit("insert", position, character) for character in alphabet]
    for position, current in enumerate(key):
        changes += [Edit("substitute", position, character) for character in alphabet if character != current]
    changes += [
        Edit("transpose", position)
        for position in range(len(key) - 1)
        if key[position] != key[position + 1] and position != checksum_start - 1
    ]
    return changes


@budget(2)
@given(data=st.data(), case=FORMATTED_KEYS)
def test_any_single_character_change_to_a_key_is_refused_by_parse(data, case):
    prefix, key = case
    for edit in data.draw(st.lists(edits(key), min_size=1, max_size=20), label="edits, each on its own"):
        with pytest.raises(keys.MalformedKey):
            keys.parse(edit.apply(key), prefix)


@budget(0.1)
@given(case=FORMATTED_KEYS, extra=st.lists(CHARACTERS, max_size=8))
def test_every_substitution_deletion_insertion_and_transposition_at_every_position_is_refused_by_parse(case, extra):
    prefix, key = case
    assert keys.parse(key, prefix)  # the key itself is good: what follows refuses changes, not keys
    alphabet = set(ALPHANUMERIC + "_" + LOOKALIKES + "".join(extra))
    accepted = []
    for edit in every_edit(key, alphabet):
        try:
            keys.parse(edit.apply(key), prefix)
        except keys.MalformedKey:
            continue
        accepted.append(edit)
    assert accepted == []


# Where a key travels in each event shape: name -> (the event presenting a key, how that shape refuses a
# malformed one: the error Unauthorized, a 401, or an answer).
UNAUTHORIZED = "Unauthorized: Unauthorized"
CARRIERS = {
    "rest-token bearer": (lambda key: shaped("rest-token", authorization=f"Bearer {key}"), UNAUTHORIZED),
    "rest-token bare": (lambda key: shaped("rest-token", authorization=key), UNAUTHORIZED),
    "rest-request authorization": (lambda key: shaped("rest-request", authorization=f"Bearer {key}"), UNAUTHORIZED),
    "rest-request x-api-key": (lambda key: shaped("rest-request", api_key=key), UNAUTHORIZED),
    "http-api authorization": (lambda key: shaped("http-api", authorization=f"Bearer {key}"), {"isAuthorized": False}),
    "http-api x-api-key": (lambda key: shaped("http-api", api_key=key), {"isAuthorized": False}),
    "websocket authorization": (lambda key: websocket(authorization=f"Bearer {key}"), UNAUTHORIZED),
    "websocket x-api-key": (lambda key: websocket(api_key=key), UNAUTHORIZED),
    "appsync bearer": (lambda key: appsync(f"Bearer {key}"), {"isAuthorized": False, "ttlOverride": 0}),
    "appsync bare": (lambda key: appsync(key), {"isAuthorized": False, "ttlOverride": 0}),
}


@dataclass
class Recorder:
    aws_calls: list[str]
    argon2_verifies: list[int]

    def clear(self) -> None:
        self.aws_calls.clear()
        self.argon2_verifies.clear()


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    """Every AWS call (at botocore's API call, as tests/test_authorizer.py's aws_calls) and every Argon2 verify."""
    recorded = Recorder([], [])
    real_call, real_verify = botocore.client.BaseClient._make_api_call, PasswordHasher.verify

    def calling(self, operation, params):
        recorded.aws_calls.append(operation)
        return real_call(self, operation, params)

    def verifying(self, *args, **kwargs):
        recorded.argon2_verifies.append(1)
        return real_verify(self, *args, **kwargs)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", calling)
    monkeypatch.setattr(PasswordHasher, "verify", verifying)
    return recorded


@pytest.fixture
def live_key(issued, authorizer, recorder) -> str:
    """A key in the table that the authorizer allows in every carrier, each time after a read of its item:
    so the recorder would see a changed key that got past the format."""
    api_key = issued()["api_key"]
    recorder.clear()
    for name, (carried, _) in CARRIERS.items():
        answer = invoke(authorizer, carried(api_key))
        assert answer.get("isAuthorized", True) and "GetItem" in recorder.aws_calls, name
    assert recorder.argon2_verifies, "the first allow verified the secret with Argon2"
    return api_key


@budget(1, fixtures=True)
@given(data=st.data(), carrier=st.sampled_from(sorted(CARRIERS)))
def test_a_changed_key_is_refused_before_any_aws_call_and_without_argon2(
    data, carrier, live_key, authorizer, recorder, capsys
):
    carried, refusal = CARRIERS[carrier]
    for edit in data.draw(st.lists(edits(live_key), min_size=1, max_size=10), label="edits, each on its own"):
        changed = edit.apply(live_key)
        if changed.strip(" \t") == live_key:  # optional whitespace around the same key: not a change
            continue
        recorder.clear()
        capsys.readouterr()
        try:
            answer = invoke(authorizer, carried(changed))
        except Exception as error:
            answer = f"{type(error).__name__}: {error}"
        assert answer == refusal, edit
        assert recorder.aws_calls == [] and recorder.argon2_verifies == [], edit
        assert [record["reason"] for record in log_records(capsys.readouterr().out) if "reason" in record] == [
            "MalformedKey"
        ], edit


def is_http_api_event(request: object) -> bool:
    """An HTTP API's event (payload 2.0), whose faults are errors other than Unauthorized."""
    return isinstance(request, dict) and request.get("version") == "2.0" and request.get("type") == "REQUEST"


def assert_documented_error(request: object, error: Exception) -> None:
    """A refusal raised is AuthorizerFault on an HTTP API (500: nothing cached), Unauthorized elsewhere (401)."""
    if is_http_api_event(request):
        assert type(error).__name__ == "AuthorizerFault", repr(error)
    else:
        assert (type(error).__name__, str(error)) == ("Unauthorized", "Unauthorized"), repr(error)


def outcome_of(handler, request: object) -> dict | Exception:
    try:
        return invoke(handler, request)
    except Exception as error:
        return error


# --- 3. RouteScopes: never an allow outside the key's scopes ---
# docs/reference.md, "RouteScopes": entries separated by ";", each "METHOD /path=scope [scope...]"; METHOD is
# an HTTP method or "*"; in a path "*" matches any run of characters, "/" included; a path matches an entry
# also with one "/" added at its end or one removed from it. A request is allowed when at least one entry
# matches its method and path and the key holds at least one scope of every entry that matches; a route no
# entry lists is refused, and so is, whatever the entries, a path holding an encoded "/" (%2F, any case) or
# ending in more than one "/". Empty: every valid key may call every route. A WebSocket connect is GET /$connect
# and an AppSync request POST /graphql. A key's apis: API_ID/STAGE patterns.

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")  # what a method ARN names
REST_STAGE = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/demo"
CONNECT_ARN = "arn:aws:execute-api:us-east-1:123456789012:wsapi12345/demo/$connect"
# Where each shape's request comes in (the events files), as a key's apis name it.
SHAPE_STAGES = {
    "rest-token": ("abcdef1234", "demo"),
    "rest-request": ("abcdef1234", "demo"),
    "http-api": ("qwerty5678", "$default"),
    "websocket": ("wsapi12345", "demo"),
    "appsync": (APPSYNC_API, "graphql"),
}


def glob(pattern: str, text: str) -> bool:
    """``*`` matches any run of characters, "/" and line breaks included, the empty run too; every other
    character matches itself. (No regular expression: nothing shared with keygate/wildcard.py.)"""
    p = t = 0
    star, resume = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star, resume, p = p, t, p + 1
        elif p < len(pattern) and pattern[p] == text[t]:
            p, t = p + 1, t + 1
        elif star >= 0:
            p, resume = star + 1, resume + 1
            t = resume
        else:
            return False
    return set(pattern[p:]) <= {"*"}


@dataclass(frozen=True)
class Entry:
    method: str
    path: str
    scopes: tuple[str, ...]


def slash_forms(path: str) -> set[str]:
    """The path, with one "/" added at its end, and with one removed from it."""
    return {path, f"{path}/"} | ({path.removesuffix("/")} if path.endswith("/") else set())


def grants(entries: list[Entry], scopes: list[str], method: str, path: str) -> bool:
    """docs/reference.md's semantics of RouteScopes, directly."""
    if not entries:
        return True
    if "%2f" in path.lower() or path.endswith("//"):
        return False
    matching = [
        entry
        for entry in entries
        if entry.method in ("*", method) and any(glob(entry.path, form) for form in slash_forms(path))
    ]
    return bool(matching) and all(set(entry.scopes) & set(scopes) for entry in matching)


def api_allows(apis: list[str] | None, api_id: str, stage: str) -> bool:
    """docs/reference.md, "apis: one deployment, many APIs": no list, every API; else an API_ID/STAGE
    pattern matching both."""
    if apis is None:
        return True
    return any(glob(pattern.split("/")[0], api_id) and glob(pattern.split("/")[1], stage) for pattern in apis)


SCOPE_NAMES = st.sampled_from(["a", "b", "c", "orders:read", "*", "x/y.z-1"])  # few: keys and entries meet
SCOPES = st.one_of(SCOPE_NAMES, st.from_regex(r"[A-Za-z0-9._:/*-]{1,64}", fullmatch=True))
SEGMENTS = st.one_of(
    st.sampled_from(
        [
            "orders",
            "admin",
            "a",
            "b",
            "v1",
            "x.y",
            "a-b",
            "a_b",
            "$batch",
            "$connect",
            "{id}",
            "{proxy+}",
            "graphql",
            "",
            "*",
            "o*",
            "*s",
            "+",
            "a*b*",
        ]
    ),
    st.from_regex(r"[A-Za-z0-9._*{}+$-]{0,5}", fullmatch=True),
)
# Paths entries share (so that they overlap, as the reference's example's do), and paths of any segments.
COMMON_PATHS = st.sampled_from(["/", "/*", "/orders", "/orders*", "/orders/*", "/orders/{id}", "/admin/*",
                                "/*/admin/*", "/*/$batch", "/$connect", "/graphql", "//orders", "/a*b*"])  # fmt: skip
PATH_PATTERNS = st.one_of(
    COMMON_PATHS,
    COMMON_PATHS,
    st.lists(SEGMENTS, min_size=1, max_size=4).map(lambda segments: "/" + "/".join(segments)),
)
ENTRIES = st.builds(
    Entry, st.sampled_from([*HTTP_METHODS, "*"]), PATH_PATTERNS, st.lists(SCOPES, min_size=1, max_size=3).map(tuple)
)
# What a run in a request's path may hold: ":" and "?" and "*" (a path's own, literal), "%", a line break, an
# encoded "/".
RUNS = st.one_of(
    st.text("ab/$.:-_{}*?+%~\né", max_size=6),
    st.sampled_from(["/", "x/y", "a/", "\n", "%2F", "x%2fy", "%252F"]),
)


APIS = st.none() | st.lists(
    st.sampled_from(
        [
            "*/*",
            "abcdef1234/demo",
            "abcdef1234/*",
            "*/demo",
            "abcdef1234/prod",
            "qwerty5678/*",
            "wsapi12345/demo",
            f"{APPSYNC_API}/graphql",
            "otherapi99/*",
            "*/$default",
            "abc*/d*",
        ]
    ),
    max_size=3,
)


@st.composite
def route_maps(draw) -> tuple[list[Entry], str]:
    """Entries, and the ROUTE_SCOPES text an operator might write for them (spaces, empty entries)."""
    entries = draw(st.lists(ENTRIES, max_size=5))
    written = []
    for entry in entries:
        gap, joiner = draw(st.sampled_from([" ", "  "])), draw(st.sampled_from([" ", "  "]))
        before, after = draw(st.sampled_from(["", " "])), draw(st.sampled_from(["", " ", "  "]))
        written.append(f"{entry.method}{gap}{entry.path}{before}={after}{joiner.join(entry.scopes)}")
    text = draw(st.sampled_from([";", "; ", " ; ", ";;", "; ;"])).join(written)
    return entries, draw(st.sampled_from([text, f"{text};", f" ; {text} "]))


@st.composite
def request_routes(draw, entries: list[Entry]) -> tuple[str, str]:
    """A request's (method, path): mostly an entry's (its method, its ``*`` filled in), else anything."""
    entry = draw(st.sampled_from(entries)) if entries else Entry("*", "/orders*", ())
    methods = {
        "the entry's": HTTP_METHODS if entry.method == "*" else [entry.method],
        "any": HTTP_METHODS,
        "none an entry names": ["TRACE", "get", "ANY", "*"],
    }
    method = draw(st.sampled_from(methods[draw(st.sampled_from([*["the entry's"] * 3, "any", "none an entry names"]))]))
    first, *rest = entry.path.split("*")
    filled = st.builds(
        lambda runs: first + "".join(run + part for run, part in zip(runs, rest, strict=True)),
        st.lists(RUNS, min_size=len(rest), max_size=len(rest)),
    )
    paths = {
        "filled": filled,
        "the pattern itself": st.just(entry.path),
        "filled, its end's slashes changed": st.builds(lambda path, end: path.rstrip("/") + end or "/", filled,
                                                       st.sampled_from(["", "/", "//"])),
        "any": st.text(max_size=12).map("/".__add__),
    }  # fmt: skip
    kinds = [*["filled"] * 3, "the pattern itself", "filled, its end's slashes changed", "any"]
    return method, draw(paths[draw(st.sampled_from(kinds))])


@st.composite
def key_scopes(draw, entries: list[Entry]) -> list[str]:
    """A key's scopes: mostly some of the entries' (so that it satisfies some, and not others), and any."""
    named = sorted({scope for entry in entries for scope in entry.scopes})
    some = []
    if named and draw(st.sampled_from([True] * 4 + [False])):
        some = draw(st.lists(st.sampled_from(named), min_size=1, max_size=3, unique=True))
    return list(dict.fromkeys(some + draw(st.lists(SCOPES, max_size=2))))


def probes(entries: list[Entry], routes: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Routes to ask a REST policy about: the given ones, and for every method each entry's (its ``*`` empty,
    holding a "/", and kept) with its neighbours: longer, shorter, under another path, with its runs of "/"
    made one (as a server may read it), with one or two "/" more at its end and without those it ends in, and
    with an encoded "/" in it."""
    asked = set(routes)
    for entry in entries:
        for filled in {entry.path.replace("*", ""), entry.path.replace("*", "x/y"), entry.path}:
            near = {filled, f"{filled}x", f"{filled}/x", filled[:-1] or "/", f"/x{filled}", re.sub("/+", "/", filled)}
            near |= {f"{filled}/", f"{filled}//", filled.rstrip("/") or "/", f"{filled}%2Fx", f"/x%2f{filled}"}
            asked |= {(method, path) for method in HTTP_METHODS for path in near}
    return asked


KEY_ID, SECRET = "K" * 16, "s" * 43
NOW = datetime(2026, 6, 1, tzinfo=UTC)


class OneKey:
    """The keys table, holding one key."""

    def __init__(self, record: KeyRecord):
        self.record = record

    def get(self, key_id: str) -> KeyRecord | None:
        return self.record if key_id == self.record.key_id else None


class AnySecret:
    """Argon2, standing in: these properties are about routes, not secrets (the handler's run has Argon2)."""

    def verify(self, phc_hash: str, secret: str, pepper: bytes) -> bool:
        return True

    def needs_rehash(self, phc_hash: str) -> bool:
        return False


class OnePepper:
    def get(self, version: str) -> bytes:
        return b"pepper"

    def current(self) -> tuple[str, bytes]:
        return "v1", b"pepper"


def event_for(shape: str, api_key: str, method: str, path: str) -> dict:
    """The event of ``shape`` for a request to ``method path`` (WebSocket: its connect; AppSync: a query)."""
    if shape == "websocket":
        return websocket(authorization=f"Bearer {api_key}")
    if shape == "appsync":
        return appsync(f"Bearer {api_key}")
    return routed(shape, api_key, method, path)


def decided(
    settings: config.Config, record: KeyRecord, method: str, path: str, shapes=tuple(SHAPE_STAGES)
) -> dict[str, dict | None]:
    """Each shape's answer for the key's request, made as the handler makes it (authorizer/app.py's _decide),
    with the table, Argon2 and the pepper standing in; None for a refusal the handler raises. Any
    exception here is a bug (these events are well-formed), so it fails the property rather than pass as a
    refusal."""
    decider = Authorizer(
        settings.key_prefix, OneKey(record), AnySecret(), OnePepper(), settings.route_scopes, VerifiedKeys(0)
    )
    answers = {}
    for shape in shapes:
        try:
            request = AuthRequest.from_event(event_for(shape, key_from("kg", KEY_ID, SECRET), method, path))
        except UnrecognizedEvent:  # a method ARN ending in /$connect: a WebSocket's mark, without its fields
            assert (shape, path.endswith("/$connect")) == ("rest-request", True), (shape, path)
            answers[shape] = None
            continue
        decision = decider.decide(request.authorization, request.api_key, request.route, NOW)
        answers[shape] = request.response(decision, settings)
    return answers


def check_answers(
    answers: dict[str, dict | None],
    entries: list[Entry],
    scopes: list[str],
    apis: list[str] | None,
    request: tuple[str, str],
    more: list[tuple[str, str]],
) -> None:
    """No answer allows a route the key's scopes (and apis) do not grant; each allows the routes they do
    grant: a REST policy every route of its stage, the other shapes their request's route."""
    for shape, answer in answers.items():
        on_api = api_allows(apis, *SHAPE_STAGES[shape])
        if shape.startswith("rest-"):
            if shape == "rest-request" and request[1].endswith("/$connect"):
                # A WebSocket's mark (shape_of): refused, as an event with a shape's mark and not its fields.
                assert answer is None
                continue
            assert answer is not None, "a live key gets a policy, Allow or Deny (403), never a 401"
            asked = sorted(probes(entries, [request, *more]))
            effect_of = iam_evaluator(answer)
            effects = {(method, path): effect_of(f"{REST_STAGE}/{method}{path}") for method, path in asked}
            resources = [r for statement in answer["policyDocument"]["Statement"] for r in statement["Resource"]]
            assert all(resource.startswith(f"{REST_STAGE}/") for resource in resources), "another API or stage"
            for (method, path), effect in effects.items():  # first what matters most: never too much
                granted = on_api and grants(entries, scopes, method, path)
                assert effect != "Allow" or granted, f"{shape}: the policy allows {method} {path}, outside the scopes"
            for (method, path), effect in effects.items():
                if method in HTTP_METHODS and on_api and grants(entries, scopes, method, path):
                    assert effect == "Allow", f"{shape}: the policy refuses {method} {path}, which the scopes grant"
            continue
        route = {"http-api": request, "websocket": ("GET", "/$connect"), "appsync": ("POST", "/graphql")}[shape]
        if shape == "websocket":
            allowed = answer is not None and iam_decision(answer, CONNECT_ARN) == "Allow"
            assert answer is None or iam_decision(answer, CONNECT_ARN.replace("$connect", "$default")) != "Allow"
        else:
            assert answer is not None, f"{shape}: a live key's refusal is an answer, not a fault"
            allowed = answer["isAuthorized"]
        granted = on_api and grants(entries, scopes, *route)
        assert allowed == granted, f"{shape}: {'allowed' if allowed else 'refused'} {route[0]} {route[1]}"


@dataclass(frozen=True)
class RouteCase:
    """A route map (its entries and their text), a key's scopes, its request, and more routes asked of the
    answers (a REST policy is asked every route)."""

    entries: list[Entry]
    text: str
    scopes: list[str]
    request: tuple[str, str]
    more: list[tuple[str, str]]


@st.composite
def route_cases(draw) -> RouteCase:
    entries, text = draw(route_maps())
    scopes, request = draw(key_scopes(entries)), draw(request_routes(entries))
    return RouteCase(entries, text, scopes, request, draw(st.lists(request_routes(entries), max_size=4)))


def issue_21(text: str, scopes: list[str], path: str) -> RouteCase:
    """One of issue 21's cases: a GET by a key whose scopes do not grant it, on a path an entry's "/" could
    be read into."""
    entries = []
    for written in text.split("; "):
        route, _, needed = written.partition("=")
        method, pattern = route.split(" ")
        entries.append(Entry(method, pattern, tuple(needed.split())))
    assert not grants(entries, scopes, "GET", path)
    return RouteCase(entries, text, scopes, ("GET", path), [])


@budget(1)
@given(case=route_cases(), apis=APIS)
@example(case=issue_21("GET /*=read; * /admin=admin", ["read"], "/admin/"), apis=None)
@example(case=issue_21("GET /files/*=read; GET /files/secret/*=secret", ["read"], "/files/secret%2Fx"), apis=None)
def test_no_answer_allows_a_route_outside_the_keys_scopes_and_each_allows_what_they_grant(case, apis):
    entries, scopes, request, more = case.entries, case.scopes, case.request, case.more
    settings = config.load(REQUIRED | {"ROUTE_SCOPES": case.text})
    record = KeyRecord(
        KEY_ID,
        "$argon2id$stand-in",
        "v1",
        "n",
        "o",
        NOW,
        scopes=tuple(scopes),
        apis=None if apis is None else tuple(apis),
    )
    check_answers(decided(settings, record, *request), entries, scopes, apis, request, more)
    for route in more:  # the HTTP API answers for one route only: ask it of the others too
        check_answers(decided(settings, record, *route, shapes=("http-api",)), entries, scopes, apis, route, [])


def handler_answer(handler, request: dict) -> dict | None:
    """The handler's answer; None for a refusal it raises, which must be the documented error."""
    outcome = outcome_of(handler, request)
    if isinstance(outcome, Exception):
        assert_documented_error(request, outcome)
        return None
    return outcome


@budget(0.05, fixtures=True)
@given(data=st.data(), route_map=route_maps())
def test_the_deployed_authorizer_never_allows_a_route_outside_the_keys_scopes(data, route_map, load, issued):
    """As above, through the real handler, its configuration read from ROUTE_SCOPES, a key issued with
    IssueKey and verified with Argon2, under moto; each example a fresh container."""
    entries, text = route_map
    scopes = data.draw(key_scopes(entries), label="the key's scopes")
    handler = load("AuthorizerFunction", ROUTE_SCOPES=text)
    api_key = issued(scopes=scopes)["api_key"]
    request = data.draw(request_routes(entries), label="request")
    answers = {shape: handler_answer(handler, event_for(shape, api_key, *request)) for shape in SHAPE_STAGES}
    check_answers(answers, entries, scopes, None, request, [])


@budget(1)
@given(route_map=route_maps())
def test_a_route_map_written_with_any_spacing_parses_to_its_entries(route_map):
    entries, text = route_map
    rules = [(rule.method, rule.path, rule.scopes) for rule in parse_route_scopes(text).rules]
    assert rules == [(entry.method, entry.path, frozenset(entry.scopes)) for entry in entries]


@budget(1)
@given(text=st.one_of(st.text(), st.text("GETPOST */$:{}=;. ab-+?\t\n"), route_maps().map(lambda m: m[1] + "x")))
def test_the_route_map_parser_refuses_with_invalid_route_scopes_only(text):
    try:
        rules = parse_route_scopes(text).rules
    except InvalidRouteScopes:
        return
    for rule in rules:  # each entry as the parser's own error message describes one
        assert rule.method in (*HTTP_METHODS, "*") and re.fullmatch(r"/[A-Za-z0-9._*{}+/$-]*", rule.path)
        assert rule.scopes and all(re.fullmatch(r"[A-Za-z0-9._:/*-]{1,64}", scope) for scope in rule.scopes)


def test_an_entry_whose_path_starts_with_two_slashes_allows_that_path_not_the_one_with_a_slash():
    """Found by the property above: powertools' builder strips every "/" a path starts with, so the REST
    policy for ``GET //orders=a`` allowed GET /orders, which no entry lists (RouteScopes, the HTTP API, and
    keygate explain refused it), and a Deny for //orders missed //orders where an Allow of /* matched it."""
    record = KeyRecord(KEY_ID, "$argon2id$stand-in", "v1", "n", "o", NOW, scopes=("a",))
    alone = decided(config.load(REQUIRED | {"ROUTE_SCOPES": "GET //orders=a"}), record, "GET", "//orders")
    assert iam_decision(alone["rest-token"], f"{REST_STAGE}/GET/orders") == "ImplicitDeny"
    assert iam_decision(alone["rest-token"], f"{REST_STAGE}/GET//orders") == "Allow"
    beside = decided(config.load(REQUIRED | {"ROUTE_SCOPES": "GET //orders=b; GET /*=a"}), record, "GET", "/x")
    assert iam_decision(beside["rest-token"], f"{REST_STAGE}/GET//orders") == "Deny"
    assert iam_decision(beside["rest-token"], f"{REST_STAGE}/GET/x") == "Allow"


def test_a_star_in_an_entry_matches_a_line_break_too():
    """Found by the property through the handler: ``*`` was a regular expression's ``.*``, which stops at a
    line break, so GET /* refused an HTTP API's GET /\\n to a key with the entry's scope (while the REST
    policy, evaluated as IAM does, allowed it, and the authorizer logged MissingScope)."""
    record = KeyRecord(KEY_ID, "$argon2id$stand-in", "v1", "n", "o", NOW, scopes=("a",))
    answers = decided(config.load(REQUIRED | {"ROUTE_SCOPES": "GET /*=a"}), record, "GET", "/\n")
    assert answers["http-api"]["isAuthorized"] is True
    assert parse_route_scopes("GET /a*b=a").allows(["a"], "GET", "/a\nx\nb")


# --- 4. whatever the event, only the documented answers ---

REFUSED = "refused"


def carried_key(authorization: list[str], api_key: list[str]) -> str | None:
    """docs/reference.md, "The key header", and presented_key's docstring, directly: "Authorization:
    Bearer <key>" (the scheme in any case) or "x-api-key: <key>", space or tab around either; a header
    sent twice with different values, a blank one, another scheme, or two different keys: refused."""
    authorizations, api_keys = {value.strip(" \t") for value in authorization}, {v.strip(" \t") for v in api_key}
    if len(authorizations) > 1 or len(api_keys) > 1 or "" in authorizations | api_keys:
        return REFUSED
    keys_carried = set(api_keys)
    for value in authorizations:
        scheme, _, credential = value.partition(" ")
        credential = credential.lstrip(" ")
        if scheme.lower() != "bearer" or not credential or any(character.isspace() for character in credential):
            return REFUSED
        keys_carried.add(credential)
    if len(keys_carried) > 1:
        return REFUSED
    return next(iter(keys_carried), None)


LONG_TEXT = st.builds(lambda chunk, times: chunk * times, st.text(min_size=1, max_size=3), st.integers(1_000, 70_000))
HEADER_VALUES = st.one_of(
    st.text(),
    st.text(CHARACTERS, max_size=12),
    st.text(" \tBbEeAaRr kg_x", max_size=12),
    st.builds(
        lambda scheme, rest: scheme + rest,
        st.sampled_from(["Bearer ", "bearer  ", " Bearer\t", "BEARER ", "Bearer\t", "Basic "]),
        st.text(max_size=8),
    ),
    FORMATTED_KEYS.map(lambda case: case[1]),
    FORMATTED_KEYS.map(lambda case: f"Bearer {case[1]}"),
    LONG_TEXT,
)


@budget(3)
@given(authorization=st.lists(HEADER_VALUES, max_size=3), api_key=st.lists(HEADER_VALUES, max_size=3))
@example(authorization=["Bearer x", " Bearer x\t"], api_key=["x"])
@example(authorization=["Bearer  x"], api_key=["x"])
def test_the_header_parser_finds_the_one_key_the_headers_carry_or_refuses(authorization, api_key):
    try:
        presented = presented_key(authorization, api_key)
    except keys.MalformedKey:
        presented = REFUSED
    assert presented == carried_key(authorization, api_key)


TEXT = st.one_of(
    st.text(),
    st.text(CHARACTERS, max_size=10),
    LONG_TEXT,
    st.sampled_from(
        [
            "",
            " ",
            "TOKEN",
            "REQUEST",
            "2.0",
            "1.0",
            "$connect",
            "CONNECT",
            "MESSAGE",
            "$default",
            "Bearer ",
            "graphql",
            "execute-api",
            f"{REST_STAGE}/GET/hello",
            CONNECT_ARN,
        ]
    ),
)
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def arns(draw) -> str:
    """Method and route ARNs: well made, missing parts, wildcards, colons and slashes where none go."""

    def part(*usual: str) -> str:
        return draw(st.one_of(st.sampled_from(usual), st.text(max_size=6), st.sampled_from(["", "*", ":", "/"])))

    resource = "/".join(
        [
            part("abcdef1234", "wsapi12345", "qwerty5678"),
            part("demo", "$default"),
            part("GET", "$connect", "POST", "get"),
        ]
        + draw(st.lists(SEGMENTS | st.text(max_size=5), max_size=3))
    )
    fields = [
        part("arn"),
        part("aws", "aws-cn"),
        part("execute-api", "lambda"),
        part("us-east-1"),
        part("123456789012"),
        resource,
    ]
    return ":".join(fields) if draw(st.booleans()) else draw(TEXT)


# The fields of the five event shapes, and what each may be set to.
FIELDS = {
    ("type",): st.sampled_from(["TOKEN", "REQUEST", "token", "request"]) | JSON,
    ("version",): st.sampled_from(["2.0", "1.0", 2.0, "2"]) | JSON,
    ("methodArn",): arns() | JSON,
    ("routeArn",): arns() | JSON,
    ("authorizationToken",): HEADER_VALUES | JSON,
    ("identitySource",): st.lists(HEADER_VALUES, max_size=2) | JSON,
    ("headers",): st.dictionaries(
        st.sampled_from(["Authorization", "authorization", "x-api-key", "X-Api-Key"]) | TEXT,
        HEADER_VALUES | JSON,
        max_size=3,
    )
    | JSON,
    ("headers", "Authorization"): HEADER_VALUES | JSON,
    ("headers", "authorization"): HEADER_VALUES | JSON,
    ("headers", "x-api-key"): HEADER_VALUES | JSON,
    ("headers", "X-API-KEY"): HEADER_VALUES | JSON,
    ("multiValueHeaders",): JSON,
    ("multiValueHeaders", "Authorization"): st.lists(HEADER_VALUES, max_size=3) | JSON,
    ("multiValueHeaders", "x-api-key"): st.lists(HEADER_VALUES, max_size=3) | JSON,
    ("requestContext",): JSON,
    ("requestContext", "apiId"): TEXT | JSON,
    ("requestContext", "stage"): TEXT | JSON,
    ("requestContext", "eventType"): st.sampled_from(["CONNECT", "MESSAGE", "DISCONNECT"]) | JSON,
    ("requestContext", "routeKey"): st.sampled_from(["$connect", "$default", "GET /hello"]) | JSON,
    ("requestContext", "connectionId"): TEXT | JSON,
    ("requestContext", "http"): JSON,
    ("requestHeaders",): JSON,
    ("requestHeaders", "authorization"): HEADER_VALUES | JSON,
}
DELETE = object()
EVENT_FILES = (
    "authorizer-rest-token.json",
    "authorizer-rest-request.json",
    "authorizer-http-api.json",
    "authorizer-websocket-connect.json",
    "authorizer-appsync.json",
)


@st.composite
def changed(draw, base: dict) -> dict:
    """``base`` with up to five of its fields set to something else, or removed."""
    request = dict(base)
    for field in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=5)):
        value = draw(st.one_of(st.just(DELETE), FIELDS[field]))
        if len(field) == 1:
            if value is DELETE:
                request.pop(field[0], None)
            else:
                request[field[0]] = value
            continue
        parent = request.get(field[0])
        parent = dict(parent) if isinstance(parent, dict) else {}
        if value is DELETE:
            parent.pop(field[1], None)
        else:
            parent[field[1]] = value
        request[field[0]] = parent
    return request


JUNK_EVENTS = st.one_of(JSON, st.sampled_from(EVENT_FILES).map(event).flatmap(changed))


def documented(request: object, outcome: dict | Exception, key_id: str | None = None) -> bool:
    """Whether the outcome allows, once checked to be an answer the docs name (docs/design.md's decision
    table, authorizer/request.py): a REST or WebSocket refusal is the error Unauthorized (401) or a Deny
    policy (403); an HTTP API's, isAuthorized false or, for a fault, the error AuthorizerFault (500);
    AppSync's, isAuthorized false with a ttlOverride of 0. An allow is for ``key_id``, and a policy's only
    for the calling API and stage."""
    if isinstance(outcome, Exception):
        assert_documented_error(request, outcome)
        return False
    if is_http_api_event(request):
        assert outcome == {"isAuthorized": False} or outcome.keys() == {"isAuthorized", "context"}, outcome
        if outcome["isAuthorized"]:
            assert outcome["isAuthorized"] is True and key_id is not None and outcome["context"]["key_id"] == key_id
        return outcome["isAuthorized"]
    if "isAuthorized" in outcome:  # AppSync's answer, to an event without a type
        assert "type" not in request, outcome
        assert outcome.keys() <= {"isAuthorized", "resolverContext", "deniedFields", "ttlOverride"}, outcome
        if outcome != {"isAuthorized": False, "ttlOverride": 0}:
            assert outcome["isAuthorized"] is True and key_id is not None
            assert outcome["resolverContext"]["key_id"] == key_id
        return outcome["isAuthorized"]
    assert outcome.keys() <= {"principalId", "policyDocument", "context", "usageIdentifierKey"}, outcome
    statements = outcome["policyDocument"]["Statement"]
    assert outcome["policyDocument"]["Version"] == "2012-10-17" and statements
    assert all(s["Effect"] in ("Allow", "Deny") and s["Action"] == "execute-api:Invoke" for s in statements)
    allows = [statement for statement in statements if statement["Effect"] == "Allow"]
    if allows:
        assert key_id is not None and outcome["principalId"] == key_id
        parts = request["methodArn"].split(":")
        stage = f"arn:{parts[1]}:execute-api:{parts[3]}:{parts[4]}:{'/'.join(parts[5].split('/')[:2])}/"
        assert all(resource.startswith(stage) for s in allows for resource in s["Resource"]), (stage, allows)
    return bool(allows)


@budget(2, fixtures=True)
@given(request=JUNK_EVENTS)
@example(request=None)
@example(request={"type": "REQUEST", "version": "2.0", "headers": ["not", "a", "map"]})
def test_no_event_without_a_key_is_allowed_or_answered_other_than_as_documented(request, authorizer):
    assert not documented(request, outcome_of(authorizer, request))


@budget(1, fixtures=True)
@given(data=st.data(), carrier=st.sampled_from(sorted(CARRIERS)))
def test_an_event_carrying_a_live_key_is_answered_as_documented_whatever_its_other_fields(
    data, carrier, live_key, authorizer
):
    request = data.draw(changed(CARRIERS[carrier][0](live_key)), label="event")
    documented(request, outcome_of(authorizer, request), key_id=keys.parse(live_key, "kg").key_id)
