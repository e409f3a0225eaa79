"""The demo APIs' protected function: echoes who the authorizer let in (on a WebSocket API, in reply to
each message; a connect is answered 200, which accepts it)."""

import json

from aws_lambda_powertools.utilities.data_classes import (
    APIGatewayProxyEvent,
    APIGatewayProxyEventV2,
    APIGatewayWebSocketEvent,
)


def handler(event: dict, context: object) -> dict:
    if event.get("version") == "2.0":
        v2 = APIGatewayProxyEventV2(event)
        caller = v2.request_context.authorizer.get_lambda or {}
        route = v2.route_key
    elif "eventType" in (event.get("requestContext") or {}):  # WebSocket: $connect, then $default messages
        websocket = APIGatewayWebSocketEvent(event).request_context
        caller = dict(websocket.get("authorizer") or {})
        route = websocket.route_key
    else:
        v1 = APIGatewayProxyEvent(event)
        caller = dict(v1.request_context.authorizer or {})
        route = f"{v1.http_method} {v1.resource}"
    body = {
        "message": "hello from a keygate-protected route",
        "route": route,
        "key_id": caller.get("key_id"),
        "owner": caller.get("owner"),
        "scopes": caller.get("scopes"),
    }
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
