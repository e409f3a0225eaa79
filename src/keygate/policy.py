"""API Gateway authorizer responses, built with powertools' response builders. Pure."""

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerResponse,
    APIGatewayAuthorizerResponseV2,
    parse_api_gateway_arn,
)

from keygate.records import KeyRecord


def auth_context(record: KeyRecord) -> dict[str, str]:
    """What the protected integration sees as the authorizer context. Scopes are space-separated,
    as OAuth's ``scope`` is, because REST API context values must be strings, numbers or booleans."""
    return {"key_id": record.key_id, "owner": record.owner, "scopes": " ".join(record.scopes)}


def rest_allow(record: KeyRecord, method_arn: str) -> dict:
    """An IAM policy allowing every route of the calling API and stage.

    Not just the method ARN: API Gateway caches the policy per key and applies it to later calls on
    other routes, so a narrower policy would refuse them until the cache expires.
    """
    response = _for_this_stage(record.key_id, method_arn, auth_context(record))
    response.allow_all_routes()
    return response.asdict()


def rest_deny(key_id: str, method_arn: str) -> dict:
    """An IAM policy denying every route of the calling API and stage to this key: API Gateway answers 403."""
    response = _for_this_stage(key_id, method_arn)
    response.deny_all_routes()
    return response.asdict()


def _for_this_stage(principal_id: str, method_arn: str, context: dict | None = None) -> APIGatewayAuthorizerResponse:
    """A policy response whose routes are those of the calling API and stage, never another's."""
    arn = parse_api_gateway_arn(method_arn)
    return APIGatewayAuthorizerResponse(
        principal_id=principal_id,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        context=context,
        partition=arn.partition,
    )


def http_simple(record: KeyRecord | None) -> dict:
    """HTTP API simple response: authorized with context, or not authorized."""
    if record is None:
        return APIGatewayAuthorizerResponseV2(authorize=False).asdict()
    return APIGatewayAuthorizerResponseV2(authorize=True, context=auth_context(record)).asdict()
