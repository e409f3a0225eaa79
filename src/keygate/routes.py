"""Scopes mapped to routes (the template's RouteScopes): which scopes a key needs for a method and path.

``GET /orders*=orders:read; POST /orders*=orders:write; * /admin/*=admin``: entries separated by ``;``,
each ``METHOD /path=scope [scope...]``; METHOD is an HTTP method or ``*``; in the path ``*`` matches any
run of characters, "/" included, as in an IAM resource ARN; a WebSocket API's connect is ``GET /$connect``
and an AppSync request ``POST /graphql``. A path matches an entry also with one "/" added at its end or one
removed from it, as API Gateway may route ``/admin/`` to ``/admin``. A request is allowed when at least one
entry matches it and the key holds at least one scope of every entry that matches: exactly what IAM does
with an Allow statement for each entry the key satisfies and a Deny for each it does not. An empty map
requires nothing; any other refuses the paths of REFUSED_PATHS to every key. Pure.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import HttpVerb

from keygate.apis import ApiStage
from keygate.wildcard import compile_wildcard

METHODS = tuple(verb.value for verb in HttpVerb)  # GET ... OPTIONS and *, as powertools' policy builder takes
CONCRETE_METHODS = tuple(method for method in METHODS if method != "*")
SCOPE_PATTERN = r"[A-Za-z0-9._:/*-]{1,64}"
# What powertools' REST policy builder takes as a resource path, and "$" for a WebSocket route (/$connect),
# which no REST path holds: a REST policy leaves such entries out.
PATH_PATTERN = r"/[A-Za-z0-9._*{}+/$-]*"
_ENTRY = re.compile(r"(?P<method>\S+) +(?P<path>[^\s=]+) *= *(?P<scopes>.*)")

# Paths a route map refuses to every key, as path patterns ("*": any run) that a REST policy denies as they
# are written. An encoded "/" (%2F, in either case, as IAM compares case): a backend may decode it into a path
# that another entry guards. A path ending in more than one "/": it may be read without them, as one trailing
# "/" is, and no IAM pattern can name "any number of '/'".
ENCODED_SLASH = ("*%2F*", "*%2f*")
TRAILING_SLASHES = ("*//",)
REFUSED_PATHS = ENCODED_SLASH + TRAILING_SLASHES


@dataclass(frozen=True)
class RequestRoute:
    """Where a request goes: its API and stage, method, and actual path (starting with /)."""

    api: ApiStage
    method: str
    path: str


class InvalidRouteScopes(ValueError):
    """The map is malformed; the message names the entry."""


@dataclass(frozen=True)
class RouteRule:
    method: str  # an HTTP method or *
    path: str  # a path pattern, * for any run of characters
    scopes: frozenset[str]  # holding any one of them satisfies the rule

    @property
    def paths(self) -> tuple[str, ...]:
        """The entry's path and its trailing-slash twins: exactly the paths that match it with one "/" added at
        their end or one removed from it, written as patterns, as a REST policy names them."""
        return (self.path, *slash_twins(self.path))

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and matches_any(self.paths, path)


@dataclass(frozen=True)
class RouteScopes:
    rules: tuple[RouteRule, ...] = ()

    def allows(self, scopes: Iterable[str], method: str, path: str) -> bool:
        """An empty map allows every route; otherwise one rule at least must match, and all that match
        must be satisfied by the key's scopes. (The authorizer refuses REFUSED_PATHS before it asks.)"""
        if not self.rules:
            return True
        matching = [rule for rule in self.rules if rule.matches(method, path)]
        held = set(scopes)
        return bool(matching) and all(rule.scopes & held for rule in matching)

    def matched_scopes(self, scopes: Iterable[str], method: str, path: str) -> tuple[str, ...]:
        """The key's scopes that satisfied the rules matching this route, in the key's order."""
        needed = set().union(*(rule.scopes for rule in self.rules if rule.matches(method, path)))
        return tuple(scope for scope in scopes if scope in needed)

    def split(self, scopes: Iterable[str]) -> tuple[list[RouteRule], list[RouteRule]]:
        """(rules the key satisfies, rules it does not): a REST policy's Allow and Deny statements."""
        held = set(scopes)
        satisfied = [rule for rule in self.rules if rule.scopes & held]
        return satisfied, [rule for rule in self.rules if not rule.scopes & held]


def slash_twins(pattern: str) -> tuple[str, ...]:
    """The patterns of the paths that match ``pattern`` only with one "/" added at their end or one removed:
    the pattern plus "/" (which a trailing "*" already covers), and, if it ends in "/" before any trailing
    "*", what comes before that "/" (``/admin/*`` matches ``/admin`` plus "/"). "/" alone has no shorter twin."""
    twins = [] if pattern.endswith("*") else [f"{pattern}/"]
    stem = pattern.rstrip("*")
    if stem.endswith("/") and len(stem) > 1:
        twins.append(stem[:-1])
    return tuple(twins)


def matches_any(patterns: Iterable[str], path: str) -> bool:
    return any(compile_wildcard(pattern).fullmatch(path) for pattern in patterns)


def parse_route_scopes(text: str) -> RouteScopes:
    """Parse the map; raises InvalidRouteScopes naming the first bad entry."""
    rules = []
    for entry in (part.strip() for part in text.split(";")):
        if not entry:
            continue
        match = _ENTRY.fullmatch(entry)
        shown = repr(entry[:120])
        if match is None:
            raise InvalidRouteScopes(f"entry {shown} is not 'METHOD /path=scope [scope...]'")
        method, path, scopes = match["method"], match["path"], match["scopes"].split()
        if method not in METHODS:
            raise InvalidRouteScopes(f"entry {shown}: method {method[:20]!r} is not one of {', '.join(METHODS)}")
        if not re.fullmatch(PATH_PATTERN, path):
            raise InvalidRouteScopes(f"entry {shown}: the path must be / then letters, digits and . _ * {{ }} + / $ -")
        if not scopes:
            raise InvalidRouteScopes(f"entry {shown} names no scope")
        for scope in scopes:
            if not re.fullmatch(SCOPE_PATTERN, scope):
                raise InvalidRouteScopes(f"entry {shown}: scope {scope[:70]!r} is not 1-64 of A-Za-z0-9._:/*-")
        rules.append(RouteRule(method, path, frozenset(scopes)))
    return RouteScopes(tuple(rules))
