"""``keygate explain``: what the authorizer would decide for a key on a route, and why, without the
secret. The decision is the authorizer's own (``authorize.refused_for``, in its order); this module only
lays out the evidence: state, expiry, grace window, the RouteScopes entries that match and which scope
satisfies each, the usage plan, and how soon a revocation would count given the cache settings. Pure.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from keygate import apis
from keygate.apis import APPSYNC_STAGE, ApiStage
from keygate.authorize import Reason, refused_for
from keygate.authorizer_cache import CachedStage
from keygate.field_scopes import FieldScopes
from keygate.records import KeyRecord, QuotaPer, Status, format_time, optional_time
from keygate.routes import CONCRETE_METHODS, RequestRoute, RouteScopes

ROUTE_EXAMPLE = 'METHOD /path, e.g. "GET /orders/7" (a WebSocket connect: "GET /$connect", AppSync: "POST /graphql")'

# The authorizer's reasons (its log's "reason"), in words. The status a client sees depends on the API:
# README's "How it works" table.
WHY = {  # every Reason: tests/test_explain.py checks it
    Reason.MISSING: "refused: the request carries no key (no Authorization: Bearer header, no x-api-key)",
    Reason.MALFORMED: "refused: the value is not a key of this stack (its prefix, shape or checksum does not hold)",
    Reason.UNKNOWN: "refused: no key has this key id (never issued here, or deleted after RetentionDays)",
    Reason.WRONG_SECRET: "refused: the key id is known, but the secret does not match its hash",
    Reason.ALLOWED: "allowed: the key is live, may be used on this API, and holds a scope of every matching entry",
    Reason.REVOKED: "refused: the key is revoked, for good",
    Reason.DISABLED: "refused: the key is disabled until enabled again",
    Reason.EXPIRED: "refused: the key is past its expires_at",
    Reason.API_NOT_ALLOWED: "refused: the key's apis do not name this API and stage",
    Reason.ENCODED_SLASH: "refused: the path holds an encoded '/' (%2F), which keygate refuses rather than guess "
    "how the backend decodes it",
    Reason.TRAILING_SLASHES: "refused: the path ends in more than one '/', which keygate refuses rather than guess "
    "which route it is read as",
    Reason.MISSING_SCOPE: "refused: the key lacks a scope this route needs",
    Reason.FAULT: "refused: the pepper version its secret was hashed with is missing from the pepper secret, so "
    "the authorizer cannot verify it and fails closed (add the version back: docs/operations.md)",
}
# A path as API Gateway passes one in a method or route ARN: anything but whitespace and control characters.
_REQUEST_PATH = re.compile(r"/[^\s\x00-\x1f\x7f*]*")
WEBSOCKET_CONNECT = ("GET", "/$connect")


class InvalidQuestion(ValueError):
    """The route or API asked about is not one the authorizer could see; the message says why."""


def parse_route(text: str) -> tuple[str, str]:
    """``"GET /orders/7"`` -> ("GET", "/orders/7")."""
    match = re.fullmatch(r" *(\S+) +(\S+) *", text)
    if match is None:
        raise InvalidQuestion(f"must be {ROUTE_EXAMPLE}")
    method, path = match[1].upper(), match[2]
    if method not in CONCRETE_METHODS:
        raise InvalidQuestion(f"method must be one of {', '.join(CONCRETE_METHODS)}")
    if not _REQUEST_PATH.fullmatch(path):
        raise InvalidQuestion("path must be / then an actual path (no *, spaces or control characters)")
    return method, path


@dataclass(frozen=True)
class Settings:
    """The authorizer's settings that decide and bound its answers."""

    route_scopes: RouteScopes = RouteScopes()  # RouteScopes
    field_scopes: FieldScopes = FieldScopes()  # AppSyncFieldScopes
    ttl: int = 0  # AuthorizerCacheTtl
    stages: tuple[CachedStage, ...] = ()  # CachedStages
    appsync_ttl: int = 0  # AppSyncCacheTtl

    def revocation_bound(self, api: ApiStage | None, route: tuple[str, str]) -> str:
        if route == WEBSOCKET_CONNECT:  # API Gateway caches no WebSocket authorizer answer
            return "the next connect; a connection already open stays open until it closes"
        if api is not None and api.stage == APPSYNC_STAGE:
            if not self.appsync_ttl:
                return "the next request: AppSyncCacheTtl is 0, AppSync caches nothing"
            return f"up to {self.appsync_ttl} s (AppSyncCacheTtl): keygate cannot flush AppSync's cache"
        if not self.ttl:
            return "the next request: AuthorizerCacheTtl is 0, API Gateway caches nothing"
        flushed = "the next request once API Gateway has applied keygate's flush"
        if api is None:
            listed = ", ".join(map(str, self.stages)) or "none"
            return f"{flushed} on the CachedStages stages ({listed}); up to {self.ttl} s on any other stage"
        if any((stage.api_id, stage.stage) == (api.api_id, api.stage) for stage in self.stages):
            return f"{flushed}: this stage is in CachedStages"
        return f"up to {self.ttl} s (AuthorizerCacheTtl): this stage is not in CachedStages, so it is never flushed"


def explain(
    record: KeyRecord,
    method: str,
    path: str,
    api: ApiStage | None,
    settings: Settings,
    now: datetime,
    missing_peppers: tuple[str, ...] = (),
) -> dict:
    """The decision for a request presenting this key's valid secret, its first reason, and the evidence.
    Without ``api``, the decision assumes an API the key's apis allow (``apis`` says whether any is named).
    ``missing_peppers``: the pepper versions the authorizer would read for this key and not find."""
    route = RequestRoute(api, method, path)
    if record.status is Status.REVOKED:
        reason = Reason.REVOKED
    elif missing_peppers:
        reason = Reason.FAULT
    else:
        reason = refused_for(record, route, settings.route_scopes, now, check_api=api is not None) or Reason.ALLOWED
    assumes = "the request presents this key's current secret (or the previous one in its grace period)"
    if api is None and record.apis is not None:
        assumes += f", on an API its apis allow ({', '.join(record.apis)}): pass api to check one"
    answer = {
        "key_id": record.key_id,
        "route": f"{method} {path}",
        "api": f"{api.api_id}/{api.stage}" if api else None,
        "decision": "allow" if reason is Reason.ALLOWED else "refuse",
        "reason": reason.value,
        "why": WHY[reason],
        "assumes": assumes,
        "state": record.state(now).value,
        "expires_at": optional_time(record.expires_at),
        "grace": _grace(record, now),
        "pepper_versions_missing": list(missing_peppers),
        "apis": _apis(record, api),
        "route_scopes": _route_scopes(record, method, path, settings.route_scopes),
        "usage_plan": _usage_plan(record),
        "revocation_bound": settings.revocation_bound(api, (method, path)),
    }
    if api is not None and api.stage == APPSYNC_STAGE and reason is Reason.ALLOWED:
        answer["appsync_denied_fields"] = settings.field_scopes.denied(record.scopes)
    return answer


def _grace(record: KeyRecord, now: datetime) -> dict | None:
    if record.previous_hash is None or record.previous_expires_at is None:
        return None
    return {
        "previous_secret_verifies_until": format_time(record.previous_expires_at),
        "previous_secret_verifies_now": record.previous_secret_valid(now),
    }


def _apis(record: KeyRecord, api: ApiStage | None) -> dict:
    view = {"key_apis": list(record.apis) if record.apis is not None else "every API"}
    if api is None:
        return view | {"allows_this_api": None, "note": "no API asked about (--api API_ID/STAGE): not checked"}
    return view | {"allows_this_api": apis.allows(record.apis, api)}


def _route_scopes(record: KeyRecord, method: str, path: str, route_scopes: RouteScopes) -> dict:
    if not route_scopes.rules:
        return {"entries": [], "verdict": "RouteScopes is empty: a valid key may call every route"}
    held = set(record.scopes)
    entries = [
        {
            "entry": f"{rule.method} {rule.path}",
            "needs_one_of": sorted(rule.scopes),
            "satisfied_by": sorted(rule.scopes & held),
        }
        for rule in route_scopes.rules
        if rule.matches(method, path)
    ]
    if not entries:
        verdict = "no RouteScopes entry matches this route: it is refused to every key"
    elif all(entry["satisfied_by"] for entry in entries):
        verdict = "every matching entry is satisfied"
    else:
        missing = [entry["entry"] for entry in entries if not entry["satisfied_by"]]
        verdict = f"not satisfied: {'; '.join(missing)}"
    return {"key_scopes": list(record.scopes), "entries": entries, "verdict": verdict}


def _usage_plan(record: KeyRecord) -> dict | None:
    if record.usage_plan_id is None:
        return None
    return {
        "usage_plan_id": record.usage_plan_id,
        "usage_key_id": record.usage_key_id,
        "quota_per": record.quota_per.value,
        "metered": "on REST API methods with ApiKeyRequired, on an API whose ApiKeySourceType is AUTHORIZER",
        "counted": _COUNTED[record.quota_per],
    }


_COUNTED = {
    QuotaPer.KEY: "against this key's own quota and throttle on the plan",
    QuotaPer.OWNER: "against its owner's quota and throttle on the plan, shared by the owner's live keys there",
}
