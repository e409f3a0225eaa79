"""The authorizer event shapes (API Gateway REST TOKEN and REQUEST, HTTP API 2.0, WebSocket $connect, and
AppSync), read with powertools' event data classes."""

from dataclasses import dataclass, replace
from enum import StrEnum

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerEventV2,
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerTokenEvent,
)
from aws_lambda_powertools.utilities.data_classes.appsync_authorizer_event import AppSyncAuthorizerEvent

from keygate import policy
from keygate.apis import APPSYNC_STAGE, ApiStage
from keygate.authorize import OPTIONAL_WHITESPACE, ROUTE_REFUSALS, Decision, Reason
from keygate.config import Config
from keygate.routes import RequestRoute


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
    """Not one of the authorizer event shapes, or one with a field missing or wrong."""


class Shape(StrEnum):
    REST_TOKEN = "rest-token"  # nosec B105 # the name of an event shape (a REST TOKEN authorizer's), not a password
    REST_REQUEST = "rest-request"
    HTTP_API = "http-api"
    WEBSOCKET = "websocket"  # a WebSocket API's $connect: the only route a WebSocket authorizer guards
    APPSYNC = "appsync"


# How RouteScopes and a key's apis name the requests that have no method ARN of their kind: a WebSocket
# connect is the upgrade request, a GET; an AppSync request is a POST to its API's /graphql.
WEBSOCKET_CONNECT = ("GET", f"/{policy.CONNECT}")
APPSYNC_REQUEST = ("POST", "/graphql")


@dataclass(frozen=True, repr=False)  # repr would show the credential
class AuthRequest:
    shape: Shape
    authorization: tuple[str, ...]  # every value the request carried for the header
    api_key: tuple[str, ...]
    route: RequestRoute  # the API, stage, method and path of the request
    method_arn: str | None = None

    @classmethod
    def from_event(cls, event: object) -> "AuthRequest":
        shape = shape_of(event)
        if shape is Shape.HTTP_API:
            v2 = APIGatewayAuthorizerEventV2(event)
            headers = v2.headers if event.get("headers") else {}
            api = _api_stage(v2.request_context.api_id, v2.request_context.stage)
            route = replace(_arn_route(v2.route_arn), api=api)  # the ARN's method and path, without the stage
            return cls(shape, _values(headers.get("authorization")), _values(headers.get("x-api-key")), route)
        if shape is Shape.REST_TOKEN:
            token = APIGatewayAuthorizerTokenEvent(event)
            route = _arn_route(token.method_arn)
            return cls(shape, *_token_headers(token.authorization_token), route, token.method_arn)
        if shape is Shape.APPSYNC:
            appsync = AppSyncAuthorizerEvent(event)
            route = RequestRoute(_api_stage(appsync.request_context.api_id, APPSYNC_STAGE), *APPSYNC_REQUEST)
            return cls(shape, *_token_headers(appsync.authorization_token), route)
        # REST REQUEST and WebSocket: the key is in the Authorization or x-api-key header, never in the query
        # string, which ends up in logs.
        method_arn = APIGatewayAuthorizerRequestEvent(event).method_arn
        authorization, api_key = _header(event, "authorization"), _header(event, "x-api-key")
        route = _connect_route(event, method_arn) if shape is Shape.WEBSOCKET else _arn_route(method_arn)
        return cls(shape, authorization, api_key, route, method_arn)

    def response(self, decision: Decision, config: Config) -> dict | None:
        """The answer for API Gateway or AppSync, or None where the refusal is an error: every REST and
        WebSocket refusal of a bad key (only raising Unauthorized gives a 401) and every API Gateway fault
        (an error's answer is never cached). A REST policy is right for every route of the stage, as API
        Gateway reuses it. AppSync refuses, faults included, with an answer it never caches."""
        if self.shape is Shape.APPSYNC:
            if not decision.allowed:
                return policy.appsync_refusal()
            denied_fields = config.appsync_field_scopes.denied(decision.record.scopes)
            return policy.appsync(decision.record, decision.matched_scopes, denied_fields, config.appsync_cache_ttl)
        if decision.reason is Reason.FAULT:
            return None
        if self.shape is Shape.HTTP_API:
            return policy.http_simple(decision.record if decision.allowed else None, decision.matched_scopes)
        if self.shape is Shape.WEBSOCKET:
            if decision.allowed:
                return policy.websocket_policy(decision.record, self.method_arn, decision.matched_scopes)
            return policy.websocket_deny(decision.key_id, self.method_arn) if decision.forbidden else None
        if decision.allowed or decision.reason in ROUTE_REFUSALS:
            return policy.rest_policy(decision.record, self.method_arn, config.route_scopes, decision.matched_scopes)
        if decision.forbidden:
            return policy.rest_deny(decision.key_id, self.method_arn)
        return None


def shape_of(event: object) -> Shape:
    """Which shape an event is, by marks no other shape carries: AppSync's event alone has no ``type``;
    an HTTP API's has ``version`` 2.0; a WebSocket one has a ``$connect`` method ARN or an ``eventType``
    or ``connectionId`` in its context. An event with a shape's marks must then have all of that
    shape's fields (``_connect_route``): it is refused, never read as another shape."""
    if not isinstance(event, dict):
        raise UnrecognizedEvent("event is not an object")
    if "type" not in event:
        context = event.get("requestContext")
        if isinstance(event.get("authorizationToken"), str) and isinstance(context, dict) and "apiId" in context:
            return Shape.APPSYNC
        raise UnrecognizedEvent("event is not an authorizer event")
    if event["type"] == "TOKEN":
        return Shape.REST_TOKEN
    if event["type"] != "REQUEST":
        raise UnrecognizedEvent("event is not an authorizer event")
    if event.get("version") == "2.0":
        return Shape.HTTP_API
    context = event.get("requestContext") if isinstance(event.get("requestContext"), dict) else {}
    connects = str(event.get("methodArn")).endswith(f"/{policy.CONNECT}")
    return Shape.WEBSOCKET if connects or {"eventType", "connectionId"} & set(context) else Shape.REST_REQUEST


def is_http_api(event: object) -> bool:
    return isinstance(event, dict) and event.get("version") == "2.0" and event.get("type") == "REQUEST"


def _token_headers(value: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(Authorization, x-api-key) for a token event's one value: "Bearer <key>", or the bare key (a REST
    TOKEN identity source may be a header holding it). API Gateway and AppSync call an authorizer only
    with a non-empty value: an empty one is no header."""
    if isinstance(value, str) and value and " " not in value.strip(OPTIONAL_WHITESPACE):
        return (), (value,)
    return _values(value or None), ()


def _arn_route(arn_text: object) -> RequestRoute:
    """The route in a method ARN (REST: which the policy is built from too) or a route ARN (HTTP API)."""
    api_id, stage, method, path = (_arn_resource(arn_text).split("/", 3) + ["", "", "", ""])[:4]
    if not method:
        raise UnrecognizedEvent("the event's ARN names no method")
    return RequestRoute(_api_stage(api_id, stage), method, f"/{path}")


def _connect_route(event: dict, method_arn: object) -> RequestRoute:
    """A WebSocket API's $connect (arn:...:API_ID/STAGE/$connect) as RouteScopes names it, GET /$connect.
    API Gateway calls a WebSocket authorizer on $connect only: any other route or event type is refused."""
    context = event.get("requestContext")
    if "version" in event or not isinstance(context, dict):
        raise UnrecognizedEvent("a WebSocket event with a version, or without its requestContext")
    if context.get("routeKey") != policy.CONNECT or context.get("eventType") != "CONNECT":
        raise UnrecognizedEvent("a WebSocket event that is not a $connect")
    api_id, stage, route = (_arn_resource(method_arn).split("/", 2) + ["", "", ""])[:3]
    if route != policy.CONNECT:
        raise UnrecognizedEvent("a WebSocket method ARN that is not API_ID/STAGE/$connect")
    return RequestRoute(_api_stage(api_id, stage), *WEBSOCKET_CONNECT)


def _arn_resource(arn_text: object) -> str:
    """What follows the account in an execute-api ARN: API_ID/STAGE/METHOD/path, or API_ID/STAGE/$connect."""
    if not isinstance(arn_text, str):
        raise UnrecognizedEvent("event has no methodArn or routeArn")
    # arn:partition:execute-api:region:account:API_ID/STAGE/... The path may hold colons of its own
    # (/v1/items:batchDelete), so only the first five colons separate; the route is what follows.
    fields = arn_text.split(":", 5)
    if len(fields) != 6 or fields[2] != "execute-api":
        raise UnrecognizedEvent("the event's ARN is not an execute-api ARN")
    return fields[5]


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
