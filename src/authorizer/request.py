"""The three API Gateway authorizer event shapes, read with powertools' event data classes."""

from dataclasses import dataclass, replace
from enum import StrEnum

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerEventV2,
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerTokenEvent,
)

from keygate import policy
from keygate.apis import ApiStage
from keygate.authorize import OPTIONAL_WHITESPACE, Decision, Reason
from keygate.routes import RequestRoute, RouteScopes


class Unauthorized(Exception):
    """API Gateway turns exactly this error message into a 401 for REST API authorizers."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


class AuthorizerFault(Exception):
    """Raised for a fault on an HTTP API: API Gateway answers 500 and, unlike ``isAuthorized: false``,
    caches nothing, so one throttled read does not lock a good key out for the cache's TTL."""

    def __init__(self) -> None:
        super().__init__("the authorizer could not decide; the request is refused")


class UnrecognizedEvent(ValueError):
    """Not a REST TOKEN, REST REQUEST or HTTP API 2.0 authorizer event."""


class Shape(StrEnum):
    REST_TOKEN = "rest-token"
    REST_REQUEST = "rest-request"
    HTTP_API = "http-api"


@dataclass(frozen=True, repr=False)  # repr would show the credential
class AuthRequest:
    shape: Shape
    authorization: tuple[str, ...]  # every value the request carried for the header
    api_key: tuple[str, ...]
    route: RequestRoute  # the API, stage, method and path of the request
    method_arn: str | None = None

    @classmethod
    def from_event(cls, event: dict) -> "AuthRequest":
        if not isinstance(event, dict):
            raise UnrecognizedEvent("event is not an object")
        if is_http_api(event):
            v2 = APIGatewayAuthorizerEventV2(event)
            headers = v2.headers if event.get("headers") else {}
            api = _api_stage(v2.request_context.api_id, v2.request_context.stage)
            route = replace(_arn_route(v2.route_arn), api=api)  # the ARN's method and path, without the stage
            return cls(Shape.HTTP_API, _values(headers.get("authorization")), _values(headers.get("x-api-key")), route)
        if event.get("type") == "TOKEN":
            token = APIGatewayAuthorizerTokenEvent(event)
            value, route = token.authorization_token, _arn_route(token.method_arn)
            # The TOKEN identity source may be Authorization ("Bearer <key>") or a header holding the bare key.
            # API Gateway calls a TOKEN authorizer only with a non-empty value: an empty one is no header.
            if isinstance(value, str) and value and " " not in value.strip(OPTIONAL_WHITESPACE):
                return cls(Shape.REST_TOKEN, (), (value,), route, token.method_arn)
            return cls(Shape.REST_TOKEN, _values(value or None), (), route, token.method_arn)
        if event.get("type") == "REQUEST":
            method_arn = APIGatewayAuthorizerRequestEvent(event).method_arn
            authorization, api_key = _header(event, "authorization"), _header(event, "x-api-key")
            return cls(Shape.REST_REQUEST, authorization, api_key, _arn_route(method_arn), method_arn)
        raise UnrecognizedEvent("event is not an API Gateway authorizer event")

    def response(self, decision: Decision, route_scopes: RouteScopes) -> dict | None:
        """The answer for API Gateway, or None where the refusal is an error: every REST refusal of a
        bad key (only raising Unauthorized gives a 401) and every fault (an error's answer is never
        cached). A REST policy is right for every route of the stage, as API Gateway reuses it."""
        if decision.reason is Reason.FAULT:
            return None
        if self.shape is Shape.HTTP_API:
            return policy.http_simple(decision.record if decision.allowed else None, decision.matched_scopes)
        if decision.allowed or decision.reason is Reason.MISSING_SCOPE:
            return policy.rest_policy(decision.record, self.method_arn, route_scopes, decision.matched_scopes)
        if decision.forbidden:
            return policy.rest_deny(decision.key_id, self.method_arn)
        return None


def is_http_api(event: object) -> bool:
    return isinstance(event, dict) and event.get("version") == "2.0" and event.get("type") == "REQUEST"


def _arn_route(arn_text: object) -> RequestRoute:
    """The route in a method ARN (REST: which the policy is built from too) or a route ARN (HTTP API)."""
    if not isinstance(arn_text, str):
        raise UnrecognizedEvent("event has no methodArn or routeArn")
    # arn:partition:execute-api:region:account:API_ID/STAGE/METHOD/path. The path may hold colons of its
    # own (/v1/items:batchDelete), so only the first five colons separate; the route is what follows.
    fields = arn_text.split(":", 5)
    if len(fields) != 6 or fields[2] != "execute-api":
        raise UnrecognizedEvent("the event's ARN is not an execute-api ARN")
    api_id, stage, method, path = (fields[5].split("/", 3) + ["", "", "", ""])[:4]
    if not method:
        raise UnrecognizedEvent("the event's ARN names no method")
    return RequestRoute(_api_stage(api_id, stage), method, f"/{path}")


def _api_stage(api_id: object, stage: object) -> ApiStage:
    if not (isinstance(api_id, str) and api_id and isinstance(stage, str) and stage):
        raise UnrecognizedEvent("event does not name its API and stage")
    return ApiStage(api_id, stage)


def _values(value: object) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else ()


def _header(event: dict, name: str) -> tuple[str, ...]:
    """Every value of a REST REQUEST event's header, any case: ``headers`` keeps only the last one."""
    values: list[str] = []
    for source in ("headers", "multiValueHeaders"):
        for header, value in (event.get(source) or {}).items():
            if isinstance(header, str) and header.lower() == name:
                values.extend(value if isinstance(value, list) else [value])
    return tuple(value for value in values if isinstance(value, str))
