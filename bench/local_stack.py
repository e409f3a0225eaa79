"""Benchmark: how fast the local stack starts, and its per-request latency through the emulated API
Gateway (authorizer + route, each in its warm worker), for each authorizer shape.

Run: .venv/bin/python -m bench.local_stack [--rounds N]   (writes docs/benchmarks-local-stack.md)
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import requests

from bench.clients import lambda_client
from bench.report import HEADER, measured_on, publish, row
from keygate_local.local_stack import DEMO, LocalStack
from keygate_local.template import ROOT


def _command_to_ready() -> tuple[float, float]:
    """(ms from `python -m keygate_local` to its ready line, ms from SIGTERM to its exit)."""
    command = [sys.executable, "-m", "keygate_local", "--ready-json", "--rest-port", "0", "--http-port", "0",
               "--lambda-port", "0", "--parameter-overrides", "DeployDemo=true"]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    process.stdout.readline()
    ready = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    return ready, (time.perf_counter() - started) * 1000


def _timed_get(url: str, headers: dict) -> float:
    started = time.perf_counter()
    response = requests.get(url, headers=headers, timeout=30)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--starts", type=int, default=5)
    arguments = parser.parse_args()
    os.environ.setdefault("SAM_CLI_TELEMETRY", "0")
    with open(os.devnull, "w") as quiet:
        starts = []
        for _ in range(arguments.starts):
            with LocalStack(log=quiet, parameters=DEMO) as local:
                starts.append(local.started_in * 1000)
        commands = [_command_to_ready() for _ in range(arguments.starts)]
        with LocalStack(log=quiet, parameters=DEMO) as local:
            issue = lambda_client(local.urls.lambda_endpoint)
            response = issue.invoke(FunctionName="IssueKeyFunction", Payload=b'{"name": "b", "owner": "b"}')
            api_key = json.loads(response["Payload"].read())["api_key"]
            rest, http = local.urls.apis["DemoRestApi"], local.urls.apis["DemoHttpApi"]
            shapes = {
                "REST API, TOKEN authorizer": (f"{rest}/whoami", {"Authorization": f"Bearer {api_key}"}),
                "REST API, REQUEST authorizer (x-api-key)": (f"{rest}/x-api-key/whoami", {"x-api-key": api_key}),
                "HTTP API, simple responses": (f"{http}/whoami", {"Authorization": f"Bearer {api_key}"}),
            }
            cold_url, cold_headers = shapes["REST API, TOKEN authorizer"]
            cold = _timed_get(cold_url, cold_headers)  # starts the authorizer's and the route's workers
            warm = {
                label: [_timed_get(url, headers) for _ in range(arguments.rounds)]
                for label, (url, headers) in shapes.items()
            }
    lines = [
        "# Local stack benchmarks",
        "",
        measured_on(f"bench/local_stack.py --rounds {arguments.rounds}"),
        "",
        "## Start",
        "",
        "`LocalStack.start()` runs embedded moto, creates the table and secret from template.yaml, reads the",
        "template with SAM CLI's providers and opens the REST, HTTP and Lambda endpoints; workers start on",
        "first use. From the command, Python also imports SAM CLI, moto and boto3 first.",
        "",
        *HEADER,
        row("`LocalStack.start()`, libraries already imported", starts),
        row("`python -m keygate_local` until ready", [ready for ready, _ in commands]),
        row("SIGTERM until the process has stopped everything and exited", [stop for _, stop in commands]),
        "",
        "## One request, client to route and back",
        "",
        "Each request runs the authorizer (one GetItem on moto; one Argon2id verify the first time a worker",
        "sees the key, its verified-key cache after) and the route function, each in its warm worker",
        "process, behind SAM CLI's API Gateway emulator.",
        "",
        *HEADER,
        f"| first request after start: both workers start (their init phase) | {cold:.0f} | | 1 |",
        *(row(f"warm, {label}", samples) for label, samples in warm.items()),
        "",
    ]
    publish("benchmarks-local-stack.md", lines)


if __name__ == "__main__":
    main()
