"""The local stack under load: 8 concurrent clients calling a route through the REST and the HTTP API
with one valid key, with the verified-key cache off (VerifiedKeyCacheSize=0, as before it) and on."""

import json
import os
import time

import requests

from bench.clients import lambda_client, run_concurrently
from keygate_local.local_stack import DEMO, LocalStack

CLIENTS = 8


def _issue(local: LocalStack) -> str:
    issue = lambda_client(local.urls.lambda_endpoint)
    response = issue.invoke(FunctionName="IssueKeyFunction", Payload=b'{"name": "load", "owner": "bench"}')
    return json.loads(response["Payload"].read())["api_key"]


def _hammer(url: str, api_key: str, requests_per_client: int) -> tuple[float, list[float]]:
    """(requests a second, latencies in ms) of CLIENTS threads sending requests_per_client each, in all."""

    def get(session: requests.Session, _) -> float:
        began = time.perf_counter()
        response = session.get(url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60)
        elapsed = (time.perf_counter() - began) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        return elapsed

    latencies, seconds = run_concurrently(range(CLIENTS * requests_per_client), CLIENTS, get)
    return len(latencies) / seconds, latencies


def under_load(requests_per_client: int) -> dict[str, tuple[float, list[float]]]:
    """{"<API>, cache off|on": (requests a second, latencies)}; workers warmed before each run."""
    results = {}
    with open(os.devnull, "w") as quiet:
        for cache, size in (("cache off", "0"), ("cache on", "10000")):
            with LocalStack(log=quiet, parameters=DEMO | {"VerifiedKeyCacheSize": size}) as local:
                api_key = _issue(local)
                for api in ("DemoRestApi", "DemoHttpApi"):
                    url = f"{local.urls.apis[api]}/whoami"
                    _hammer(url, api_key, 3)  # start every worker the load needs
                    label = "REST API" if api == "DemoRestApi" else "HTTP API"
                    results[f"{label}, {cache}"] = _hammer(url, api_key, requests_per_client)
    return results
