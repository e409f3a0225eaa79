"""Events for the leak report's route (GitHub secret scanning alerts)."""

import base64


def http_event(body: bytes, headers: dict[str, str], base64_body: bool = False) -> dict:
    """An HTTP API payload 2.0 event for POST /github/secret-scanning, headers lower-cased as API Gateway does."""
    return {
        "version": "2.0",
        "routeKey": "POST /github/secret-scanning",
        "rawPath": "/github/secret-scanning",
        "rawQueryString": "",
        "headers": {name.lower(): value for name, value in headers.items()},
        "requestContext": {
            "apiId": "a1b2c3d4e5",
            "stage": "$default",
            "http": {"method": "POST", "path": "/github/secret-scanning", "sourceIp": "192.0.2.1"},
        },
        "body": base64.b64encode(body).decode() if base64_body else body.decode(),
        "isBase64Encoded": base64_body,
    }
