"""API Gateway and AppSync authorizer responses, built with powertools' response builders. Pure."""

from collections.abc import Sequence

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerResponse,
    APIGatewayAuthorizerResponseV2,
    APIGatewayAuthorizerResponseWebSocket,
    parse_api_gateway_arn,
)
from aws_lambda_powertools.utilities.data_classes.appsync_authorizer_event import AppSyncAuthorizerResponse

from keygate.records import KeyRecord
from keygate.routes import CONCRETE_METHODS, REFUSED_PATHS, RouteScopes

CONNECT = "$connect"  # the WebSocket route an authorizer guards


def auth_context(record: KeyRecord, matched_scopes: Sequence[str] = ()) -> dict[str, str]:
    """What the protected integration sees as the authorizer context. Scopes are space-separated,
    as OAuth's ``scope`` is, because REST API context values must be strings, numbers or booleans:
    ``scopes`` the key's, ``matched_scopes`` those that satisfied RouteScopes for this route, and each entry
    of the key's metadata as ``meta_<name>``, the prefix keeping an admin's names apart from keygate's."""
    return {
        "key_id": record.key_id,
        "owner": record.owner,
        "scopes": " ".join(record.scopes),
        "matched_scopes": " ".join(matched_scopes),
        **{f"meta_{name}": value for name, value in record.metadata},
    }


def rest_policy(record: KeyRecord, method_arn: str, route_scopes: RouteScopes, matched_scopes: Sequence[str]) -> dict:
    """An IAM policy for every route of the calling API and stage, not just the method ARN: API
    Gateway caches the policy per key and applies it to later calls on other routes.

    Without a route map, it allows every route. With one, it allows the routes of each entry the key
    satisfies and denies those of each entry it does not: IAM's explicit deny wins where entries
    overlap, and a route no entry lists is allowed by none, so API Gateway decides every route exactly
    as RouteScopes does. It denies the paths a route map refuses to every key (REFUSED_PATHS) too.
    """
    # usage_key_value: a REST API with ApiKeySourceType AUTHORIZER meters the key by it, on its usage plan.
    response = _for_this_stage(
        record.key_id, method_arn, auth_context(record, matched_scopes), usage_key=record.usage_key_value
    )
    if not route_scopes.rules:
        response.allow_all_routes()
        return response.asdict()
    # Each entry's statements name its trailing-slash twins too (RouteRule.paths). powertools' builder refuses
    # a path holding "$" (GET /$connect, a WebSocket route; /$batch, an OData one), and strips every "/" a path
    # starts with (//orders would name /orders, which no entry lists; the twin of / is //): those statements
    # are written here.
    routes = [
        (effect, method, path)
        for effect, rules in zip(("Allow", "Deny"), route_scopes.split(record.scopes), strict=True)
        for rule in rules
        for method in _methods(rule.method)
        for path in rule.paths
    ]
    # A refused path's pattern starts with "*", which spans the method too: API/STAGE/*// is GET//, GET/a//...
    refused = [f"{_stage_arn(method_arn)}/{pattern}" for pattern in REFUSED_PATHS]
    by_hand: dict[str, list[str]] = {"Allow": [], "Deny": refused}
    for effect, method, path in routes:
        if not _builder_writes(path):
            by_hand[effect].append(_route_arn(method_arn, method, path))
        elif effect == "Allow":
            response.allow_route(method, path)
        else:
            response.deny_route(method, path)
    statements = [
        {"Action": "execute-api:Invoke", "Effect": effect, "Resource": arns} for effect, arns in by_hand.items() if arns
    ]
    if not any(_builder_writes(path) for _, _, path in routes):  # every statement written here
        response.deny_all_routes()  # the builder's answer needs one; no other route is allowed
        answer = response.asdict()
        if by_hand["Allow"]:
            answer["policyDocument"]["Statement"] = statements  # the rest: denied by no Allow
        return answer
    answer = response.asdict()
    answer["policyDocument"]["Statement"].extend(statements)
    return answer


def _builder_writes(path: str) -> bool:
    return "$" not in path and not path.startswith("//")


def _route_arn(method_arn: str, method: str, path: str) -> str:
    """The ARN of a route of the calling API and stage, as powertools' builder writes one (but for the
    path's every leading "/" after the first, which it would strip)."""
    return f"{_stage_arn(method_arn)}/{method}/{path.removeprefix('/')}"


def _stage_arn(method_arn: str) -> str:
    arn = parse_api_gateway_arn(method_arn)
    return f"arn:{arn.partition}:execute-api:{arn.region}:{arn.aws_account_id}:{arn.api_id}/{arn.stage}"


def _methods(method: str) -> tuple[str, ...]:
    """A rule's method as policy statements name it. ``*`` becomes each method, one by one: in an ARN
    ``*/admin/*`` would also match ``PUT/internal/admin/x``, as IAM's ``*`` spans "/"."""
    return CONCRETE_METHODS if method == "*" else (method,)


def rest_deny(key_id: str, method_arn: str) -> dict:
    """An IAM policy denying every route of the calling API and stage to this key: API Gateway answers 403."""
    response = _for_this_stage(key_id, method_arn)
    response.deny_all_routes()
    return response.asdict()


def _for_this_stage(
    principal_id: str,
    method_arn: str,
    context: dict | None = None,
    usage_key: str | None = None,
    websocket: bool = False,
) -> APIGatewayAuthorizerResponse:
    """A policy response whose routes are those of the calling API and stage, never another's."""
    arn = parse_api_gateway_arn(method_arn, is_websocket_authorizer=websocket)
    response = APIGatewayAuthorizerResponseWebSocket if websocket else APIGatewayAuthorizerResponse
    return response(
        principal_id=principal_id,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        context=context,
        usage_identifier_key=usage_key,
        partition=arn.partition,
    )


def websocket_policy(record: KeyRecord, method_arn: str, matched_scopes: Sequence[str]) -> dict:
    """An IAM policy allowing exactly the $connect route of the calling WebSocket API and stage, the
    only route an authorizer guards there."""
    response = _for_this_stage(record.key_id, method_arn, auth_context(record, matched_scopes), websocket=True)
    response.allow_route(CONNECT)
    return response.asdict()


def websocket_deny(key_id: str, method_arn: str) -> dict:
    """An IAM policy denying the $connect route of the calling WebSocket API and stage: API Gateway answers 403."""
    response = _for_this_stage(key_id, method_arn, websocket=True)
    response.deny_route(CONNECT)
    return response.asdict()


def appsync(record: KeyRecord, matched_scopes: Sequence[str], denied_fields: Sequence[str], ttl: int) -> dict:
    """AppSync's answer for an allowed key: the caller in ``resolverContext``, the fields it may not read
    in ``deniedFields``, cached by AppSync for ``ttl`` seconds (AppSyncCacheTtl). ``ttlOverride`` is always
    sent: without it AppSync would cache for the API's own TTL."""
    return AppSyncAuthorizerResponse(
        authorize=True,
        max_age=ttl,
        resolver_context=auth_context(record, matched_scopes),
        deny_fields=list(denied_fields),
    ).asdict()


def appsync_refusal() -> dict:
    """AppSync's answer to every refusal, a fault's too: not authorized (UnauthorizedException), never cached."""
    return AppSyncAuthorizerResponse(authorize=False, max_age=0).asdict()


def http_simple(record: KeyRecord | None, matched_scopes: Sequence[str] = ()) -> dict:
    """HTTP API simple response: authorized with context, or not authorized."""
    if record is None:
        return APIGatewayAuthorizerResponseV2(authorize=False).asdict()
    return APIGatewayAuthorizerResponseV2(authorize=True, context=auth_context(record, matched_scopes)).asdict()
