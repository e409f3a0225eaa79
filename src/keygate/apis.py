"""Which APIs and stages a key may be used on: ``API_ID/STAGE`` patterns, ``*`` matching any run of
characters within its part (``a1b2c3d4e5/prod``, ``a1b2c3d4e5/*``, ``*/prod``). Pure.

A key with no list works on every API the authorizer is attached to; one with a list only where an
entry matches the API and stage of the request.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

from keygate.wildcard import compile_wildcard

# API ids are 10 lower-case letters and digits; stage names letters, digits, "-", "_" ($default on HTTP APIs).
API_PATTERN = r"[A-Za-z0-9*]{1,64}/[A-Za-z0-9_$*-]{1,128}"
# The template's DefaultKeyApis: empty, or entries separated by commas (spaces allowed around them).
API_LIST_PATTERN = rf"^ *({API_PATTERN} *(, *{API_PATTERN} *)*)?$"
EXAMPLE = "API_ID/STAGE, e.g. a1b2c3d4e5/prod or a1b2c3d4e5/*"
APPSYNC_STAGE = "graphql"  # an AppSync API has no stage: a key's apis name it API_ID/graphql


@dataclass(frozen=True)
class ApiStage:
    """The API and stage a request came in on."""

    api_id: str
    stage: str


def is_api_pattern(text: object) -> bool:
    return isinstance(text, str) and re.fullmatch(API_PATTERN, text) is not None


def parse_api_list(text: str) -> tuple[str, ...] | None:
    """``"a/b, c/*"`` -> ``("a/b", "c/*")``; empty -> None (every API). Raises ValueError naming a bad entry."""
    entries = [entry.strip() for entry in text.split(",")] if text.strip() else []
    for entry in entries:
        if not is_api_pattern(entry):
            raise ValueError(f"{entry[:80]!r} is not {EXAMPLE}")
    return tuple(entries) or None


def allows(patterns: Sequence[str] | None, api: ApiStage) -> bool:
    """True when the key may be used on this API and stage: no list, or an entry that matches both."""
    if patterns is None:
        return True
    target = f"{api.api_id}/{api.stage}"
    return any(compile_wildcard(pattern, any_run="[^/]*").fullmatch(target) for pattern in patterns)
