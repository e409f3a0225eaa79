"""The local stack under load: 8 concurrent clients calling a route through the REST and the HTTP API
with one valid key, with the verified-key cache off (VerifiedKeyCacheSize=0, as before it) and on."""

import json
import os
import threading
import time

import boto3
import requests

from keygate_local.local_stack import LocalStack

CLIENTS = 8


def _issue(local: LocalStack) -> str:
    client = boto3.client(
        "lambda", endpoint_url=local.urls.lambda_endpoint, region_name="us-east-1",
        aws_access_key_id="bench", aws_secret_access_key="bench",
    )  # fmt: skip
    response = client.invoke(FunctionName="IssueKeyFunction", Payload=b'{"name": "load", "owner": "bench"}')
    return json.loads(response["Payload"].read())["api_key"]


def _hammer(url: str, api_key: str, requests_per_client: int) -> tuple[float, list[float]]:
    """(requests a second, latencies in ms) of CLIENTS threads each sending requests_per_client."""
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS + 1)

    def client() -> None:
        with requests.Session() as session:
            start.wait()
            for _ in range(requests_per_client):
                began = time.perf_counter()
                response = session.get(url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60)
                elapsed = (time.perf_counter() - began) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"{url} answered {response.status_code}")
                with lock:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return len(latencies) / (time.perf_counter() - began), latencies


def under_load(requests_per_client: int) -> dict[str, tuple[float, list[float]]]:
    """{"<API>, cache off|on": (requests a second, latencies)}; workers warmed before each run."""
    results = {}
    with open(os.devnull, "w") as quiet:
        for cache, size in (("cache off", "0"), ("cache on", "10000")):
            with LocalStack(log=quiet, parameters={"VerifiedKeyCacheSize": size}) as local:
                api_key = _issue(local)
                for api in ("DemoRestApi", "DemoHttpApi"):
                    url = f"{local.urls.apis[api]}/whoami"
                    _hammer(url, api_key, 3)  # start every worker the load needs
                    label = "REST API" if api == "DemoRestApi" else "HTTP API"
                    results[f"{label}, {cache}"] = _hammer(url, api_key, requests_per_client)
    return results
