"""What API Gateway does around an authorizer that SAM CLI's emulator does not, so the local stack can
show it: the authorizer cache (answers kept per identity for ReauthorizeEvery seconds, and flushed by
FlushStageAuthorizersCache / ResetAuthorizersCache), and usage plans (a route with ApiKeyRequired
counts each request against the quota of the plan holding the API key the authorizer named).

The functions' API Gateway endpoint is ``ControlPlane``: it answers the two flush calls itself and
forwards every other call (API keys, usage plans) to moto. Throttling (RateLimit, BurstLimit) is not
emulated, only the quota.
"""

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import requests
from flask import Flask, Response, jsonify, request

_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "content-encoding", "keep-alive"}


class AuthorizerCache:
    """One stage's cached authorizer answers: identity -> (answer, time it expires)."""

    def __init__(self, clock=time.monotonic):
        self._answers: dict[tuple, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self.flushes = 0

    def get(self, identity: tuple) -> str | None:
        with self._lock:
            answer, until = self._answers.get(identity, (None, 0.0))
            return answer if self._clock() < until else None

    def put(self, identity: tuple, answer: str, ttl: int) -> None:
        if ttl > 0:
            with self._lock:
                self._answers[identity] = (answer, self._clock() + ttl)

    def flush(self) -> None:
        with self._lock:
            self._answers.clear()
            self.flushes += 1


class QuotaExceeded(Exception):
    """429 {"message": "Limit Exceeded"}, as API Gateway answers past a usage plan's quota."""


class NoUsagePlan(Exception):
    """403 {"message": "Forbidden"}: no enabled API key of a plan on this stage was named."""


@dataclass
class UsageMeter:
    """Usage plans as API Gateway applies them, read from the API keys and plans on the AWS endpoint."""

    apigateway: object  # a boto3 client
    counts: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def charge(self, usage_key_value: str | None, api_id: str, stage: str) -> None:
        if not usage_key_value:
            raise NoUsagePlan()
        keys = self.apigateway.get_api_keys(includeValues=True)["items"]
        key = next((key for key in keys if key.get("value") == usage_key_value and key.get("enabled")), None)
        if key is None:
            raise NoUsagePlan()
        plans = self.apigateway.get_usage_plans(keyId=key["id"])["items"]
        plan = next(
            (plan for plan in plans for stage_of in plan.get("apiStages", [])
             if (stage_of.get("apiId"), stage_of.get("stage")) == (api_id, stage)),
            None,
        )  # fmt: skip
        if plan is None:
            raise NoUsagePlan()
        quota = plan.get("quota")
        period = _period(quota["period"]) if quota else None
        with self._lock:
            counted = (plan["id"], key["id"], period)
            if quota and self.counts[counted] >= quota["limit"]:
                raise QuotaExceeded()
            self.counts[counted] += 1


def _period(name: str) -> str:
    now = datetime.now(UTC)
    return {"DAY": now.strftime("%Y-%m-%d"), "WEEK": now.strftime("%G-W%V"), "MONTH": now.strftime("%Y-%m")}[name]


class ControlPlane:
    """The API Gateway endpoint the local functions call: flushes here, everything else to moto."""

    def __init__(self, caches: dict[tuple[str, str], AuthorizerCache], forward_to: str):
        self.caches = caches  # (api id, stage) -> its cache
        self._forward_to = forward_to.rstrip("/")
        self.app = Flask(__name__)
        self.app.add_url_rule(
            "/restapis/<api_id>/stages/<stage>/cache/authorizers", view_func=self._flush_rest, methods=["DELETE"]
        )
        self.app.add_url_rule(
            "/v2/apis/<api_id>/stages/<stage>/cache/authorizers", view_func=self._flush_http, methods=["DELETE"]
        )
        self.app.add_url_rule("/", view_func=self._forward, methods=_METHODS, defaults={"path": ""})
        self.app.add_url_rule("/<path:path>", view_func=self._forward, methods=_METHODS)

    def _flush(self, api_id: str, stage: str, done: int) -> Response:
        cache = self.caches.get((api_id, stage))
        if cache is None:
            return _not_found(f"Invalid stage identifier specified: {api_id}/{stage}")
        cache.flush()
        return Response(status=done)

    def _flush_rest(self, api_id: str, stage: str) -> Response:
        return self._flush(api_id, stage, 202)

    def _flush_http(self, api_id: str, stage: str) -> Response:
        return self._flush(api_id, stage, 204)

    def _forward(self, path: str) -> Response:
        url = f"{self._forward_to}/{path}"
        headers = {name: value for name, value in request.headers if name.lower() != "host"}
        upstream = requests.request(
            request.method, url, params=request.args, data=request.get_data(), headers=headers, timeout=30
        )
        kept = [(name, value) for name, value in upstream.headers.items() if name.lower() not in _HOP_BY_HOP]
        return Response(upstream.content, status=upstream.status_code, headers=kept)


_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]


def _not_found(message: str) -> Response:
    response = jsonify({"message": message})
    response.status_code = 404
    response.headers["x-amzn-ErrorType"] = "NotFoundException"
    return response
