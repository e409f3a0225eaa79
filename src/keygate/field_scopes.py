"""Scopes mapped to AppSync fields (the template's AppSyncFieldScopes): which fields an allowed key may
not read.

``Mutation.createOrder=orders:write; Query.orders=orders:read``: entries separated by ``;``, each
``Type.field=scope [scope...]``. A key holding none of an entry's scopes gets its field in the answer's
``deniedFields``, which AppSync answers with null; a field no entry lists is open to every valid key. An
empty map denies nothing. Pure.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from keygate.routes import SCOPE_PATTERN

FIELD_PATTERN = r"[_A-Za-z][_0-9A-Za-z]*\.[_A-Za-z][_0-9A-Za-z]*"  # GraphQL names: Type.field
_ENTRY = re.compile(r"(?P<field>[^\s=]+) *= *(?P<scopes>.*)")


class InvalidFieldScopes(ValueError):
    """The map is malformed; the message names the entry."""


@dataclass(frozen=True)
class FieldRule:
    field: str  # Type.field, as deniedFields names it
    scopes: frozenset[str]  # holding any one of them opens the field


@dataclass(frozen=True)
class FieldScopes:
    rules: tuple[FieldRule, ...] = ()

    def denied(self, scopes: Iterable[str]) -> list[str]:
        """The fields of every entry the key holds none of the scopes for, in the map's order."""
        held = set(scopes)
        return [rule.field for rule in self.rules if not rule.scopes & held]


def parse_field_scopes(text: str) -> FieldScopes:
    """Parse the map; raises InvalidFieldScopes naming the first bad entry."""
    rules: list[FieldRule] = []
    for entry in (part.strip() for part in text.split(";")):
        if not entry:
            continue
        match = _ENTRY.fullmatch(entry)
        shown = repr(entry[:120])
        if match is None or not re.fullmatch(FIELD_PATTERN, match["field"]):
            raise InvalidFieldScopes(f"entry {shown} is not 'Type.field=scope [scope...]'")
        field, scopes = match["field"], match["scopes"].split()
        if not scopes:
            raise InvalidFieldScopes(f"entry {shown} names no scope")
        for scope in scopes:
            if not re.fullmatch(SCOPE_PATTERN, scope):
                raise InvalidFieldScopes(f"entry {shown}: scope {scope[:70]!r} is not 1-64 of A-Za-z0-9._:/*-")
        if any(rule.field == field for rule in rules):
            raise InvalidFieldScopes(f"entry {shown}: {field} is listed twice; give it one entry")
        rules.append(FieldRule(field, frozenset(scopes)))
    return FieldScopes(tuple(rules))
