"""Benchmark: Argon2id cost at a few parameter sets, and the authorizer's in-process decision time per
outcome (moto for DynamoDB and Secrets Manager, so AWS latency is not in these numbers).

Run: .venv/bin/python -m bench.authorizer [--rounds N]   (writes docs/benchmarks.md)
"""

import argparse
import os
import resource
import subprocess
import sys
import time

import boto3
from moto import mock_aws

from bench.report import HEADER, measured_on, publish, row
from keygate import keys
from keygate.hashing import Argon2Params, Hasher
from keygate_local.template import ROOT, Stack, import_handler, load_template

PARAMETER_SETS = [
    Argon2Params(memory_kib=8192, time_cost=1, parallelism=1),
    Argon2Params(memory_kib=19456, time_cost=2, parallelism=1),  # the default (OWASP)
    Argon2Params(memory_kib=47104, time_cost=1, parallelism=1),  # OWASP's other equivalent
    Argon2Params(memory_kib=65536, time_cost=3, parallelism=1),
]


class Context:
    function_name = "bench"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"


def _timed(call, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def argon2_rows(rounds: int) -> list[str]:
    rows = []
    pepper, secret = b"p" * 64, "S" * 43
    for params in PARAMETER_SETS:
        hasher = Hasher(params)
        phc = hasher.hash(secret, pepper)
        label = f"m={params.memory_kib} KiB, t={params.time_cost}, p={params.parallelism}"
        rows.append(
            row(f"verify {label}", _timed(lambda hasher=hasher, phc=phc: hasher.verify(phc, secret, pepper), rounds))
        )
    return rows


def _deny_or_allow(authorizer, event):
    try:
        return authorizer(event, Context())
    except Exception:
        return None


def _cold_imports(stack: Stack, runs: int = 7) -> list[float]:
    """Wall time to import the handler module in a fresh interpreter: the init phase Lambda bills."""
    code = "import time; t = time.perf_counter(); import authorizer.app; print((time.perf_counter() - t) * 1000)"
    environment = os.environ | stack.function_environment("AuthorizerFunction") | {"PYTHONPATH": str(ROOT / "src")}
    return [
        float(
            subprocess.run(
                [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]


def authorizer_rows(rounds: int) -> list[str]:
    os.environ.update(
        AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
        POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_METRICS_DISABLED="true", POWERTOOLS_LOG_LEVEL="ERROR",
    )  # fmt: skip
    with mock_aws():
        stack = Stack(load_template())
        stack.create_tables(boto3.client("dynamodb"))
        stack.create_pepper_secret(boto3.client("secretsmanager"))
        os.environ.update(stack.function_environment("IssueKeyFunction"))
        issue = import_handler(stack, "IssueKeyFunction")
        issued = issue({"name": "bench", "owner": "bench"}, Context())
        os.environ.update(stack.function_environment("AuthorizerFunction"))
        authorizer = import_handler(stack, "AuthorizerFunction")
        api_key = issued["api_key"]
        body = f"kg_{issued['key_id']}_{'Z' * keys.SECRET_LENGTH}"
        cases = {
            "allowed (valid key)": api_key,
            "wrong secret": body + keys.checksum(body),
            "unknown key id": keys.generate("kg").api_key,
            "mistyped (checksum fails)": api_key[:-1] + ("A" if api_key[-1] != "A" else "B"),
        }
        template = {"type": "TOKEN", "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc/demo/GET/hello"}
        rows = [row("cold start: import authorizer.app in a new Python process", _cold_imports(stack))]
        for label, presented in cases.items():
            event = template | {"authorizationToken": f"Bearer {presented}"}
            _deny_or_allow(authorizer, event)  # warm
            rows.append(
                row(f"decision: {label}", _timed(lambda event=event: _deny_or_allow(authorizer, event), rounds))
            )
        return rows


def _peak_rss_mib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50)
    rounds = parser.parse_args().rounds
    lines = [
        "# Benchmarks",
        "",
        measured_on(f"bench/authorizer.py --rounds {rounds}") + " Re-run it to refresh this page.",
        "",
        "## Argon2id verify, one call",
        "",
        "The authorizer pays one verify per request for a well-formed key (a wrong secret and an unknown key id",
        "cost the same, by design). Lambda gives a function CPU in proportion to its memory: at 1024 MB expect",
        "roughly 1.7x these times, at 1769 MB (one full vCPU) about these.",
        "",
        *HEADER,
        *argon2_rows(rounds),
        "",
        "## Authorizer decision, in-process (handler + moto, REST TOKEN event)",
        "",
        "DynamoDB and Secrets Manager are moto in the same process here, so network latency to AWS",
        "(a GetItem is typically a few ms in-region) is not included.",
        "",
        *HEADER,
        *authorizer_rows(rounds),
        "",
        "The cold start is mostly library imports (`python -X importtime -c 'import authorizer.app'` shows",
        "boto3, the X-Ray SDK behind powertools' Tracer, and creating the two boto3 clients); Lambda pays it",
        "once per container, in the init phase.",
        "",
        f"Peak resident memory of the benchmark process: {_peak_rss_mib()} MiB.",
        "",
    ]
    publish("benchmarks.md", lines)


if __name__ == "__main__":
    main()
