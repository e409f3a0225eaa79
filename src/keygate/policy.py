"""API Gateway authorizer responses, built with powertools' response builders. Pure."""

from collections.abc import Sequence

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerResponse,
    APIGatewayAuthorizerResponseV2,
    parse_api_gateway_arn,
)

from keygate.records import KeyRecord
from keygate.routes import CONCRETE_METHODS, RouteScopes


def auth_context(record: KeyRecord, matched_scopes: Sequence[str] = ()) -> dict[str, str]:
    """What the protected integration sees as the authorizer context. Scopes are space-separated,
    as OAuth's ``scope`` is, because REST API context values must be strings, numbers or booleans:
    ``scopes`` the key's, ``matched_scopes`` those that satisfied RouteScopes for this route."""
    return {
        "key_id": record.key_id,
        "owner": record.owner,
        "scopes": " ".join(record.scopes),
        "matched_scopes": " ".join(matched_scopes),
    }


def rest_policy(record: KeyRecord, method_arn: str, route_scopes: RouteScopes, matched_scopes: Sequence[str]) -> dict:
    """An IAM policy for every route of the calling API and stage, not just the method ARN: API
    Gateway caches the policy per key and applies it to later calls on other routes.

    Without a route map, it allows every route. With one, it allows the routes of each entry the key
    satisfies and denies those of each entry it does not: IAM's explicit deny wins where entries
    overlap, and a route no entry lists is allowed by none, so API Gateway decides every route exactly
    as RouteScopes does.
    """
    # usage_key_value: a REST API with ApiKeySourceType AUTHORIZER meters the key by it, on its usage plan.
    response = _for_this_stage(
        record.key_id, method_arn, auth_context(record, matched_scopes), usage_key=record.usage_key_value
    )
    if not route_scopes.rules:
        response.allow_all_routes()
    satisfied, unsatisfied = route_scopes.split(record.scopes)
    for rule in satisfied:
        for method in _methods(rule.method):
            response.allow_route(method, rule.path)
    for rule in unsatisfied:
        for method in _methods(rule.method):
            response.deny_route(method, rule.path)
    return response.asdict()


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
    principal_id: str, method_arn: str, context: dict | None = None, usage_key: str | None = None
) -> APIGatewayAuthorizerResponse:
    """A policy response whose routes are those of the calling API and stage, never another's."""
    arn = parse_api_gateway_arn(method_arn)
    return APIGatewayAuthorizerResponse(
        principal_id=principal_id,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        context=context,
        usage_identifier_key=usage_key,
        partition=arn.partition,
    )


def http_simple(record: KeyRecord | None, matched_scopes: Sequence[str] = ()) -> dict:
    """HTTP API simple response: authorized with context, or not authorized."""
    if record is None:
        return APIGatewayAuthorizerResponseV2(authorize=False).asdict()
    return APIGatewayAuthorizerResponseV2(authorize=True, context=auth_context(record, matched_scopes)).asdict()
