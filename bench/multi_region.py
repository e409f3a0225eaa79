"""The revocation bound across regions, measured on the two-region simulation (tests/helpers/regions.py):
from a revoke in the primary returning, to the first request the region's authorizer refuses (AuthorizerCacheTtl
0), or to the region's flush of its own cached answers reaching API Gateway (with the cache). Writes the
table in docs/multi-region.md between its markers. About a minute."""

import os
import statistics
import time
from pathlib import Path

import botocore.client
import pytest
from moto import mock_aws

from bench.report import measured_on, p99
from keygate_local.template import load_template
from tests.conftest import create_stack, invoke, load_function
from tests.helpers.authorizer import decide, shaped
from tests.helpers.regions import Replicator, regional_handler, regional_pepper, replica_stream_to

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- bound:begin (bench/multi_region.py writes this) -->", "<!-- bound:end -->"
LAGS = (0.0, 0.2, 2.0)  # simulated replication lag, seconds: none, a typical one, a slow one
TRIALS = {0.0: 20, 0.2: 20, 2.0: 5}
CACHED = {"AUTHORIZER_CACHE_TTL": "300", "CACHED_STAGES": "rest:a1b2c3d4e5/prod"}


def allowed(authorizer, key: dict) -> bool:
    return decide(authorizer, shaped("rest-token", authorization=f"Bearer {key['api_key']}"))[0]


class Flushes:
    """When each flush call reached AWS (moto has no authorizer cache: answered as API Gateway does)."""

    def __init__(self):
        self.times: list[float] = []
        real = botocore.client.BaseClient._make_api_call

        def answering(client, operation, params):
            if operation in ("FlushStageAuthorizersCache", "ResetAuthorizersCache"):
                self.times.append(time.monotonic())
                return {}
            return real(client, operation, params)

        botocore.client.BaseClient._make_api_call = answering


def revoked_until(revoke, key: dict, seen) -> float:
    """Seconds from the revoke returning to ``seen(after)`` holding."""
    invoke(revoke, {"key_id": key["key_id"]})
    after = time.monotonic()
    while not seen(after):
        assert time.monotonic() - after < 30, "never seen"
    return time.monotonic() - after


def main() -> None:
    os.environ |= {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}  # fmt: skip
    rows = []
    with mock_aws():
        flushes = Flushes()  # inside: moto patches botocore as it starts
        stack, patch = create_stack(load_template()), pytest.MonkeyPatch()
        issue, revoke = (load_function(stack, patch, f"{name}Function") for name in ("IssueKey", "RevokeKey"))

        def new_key() -> dict:
            return invoke(issue, {"name": "bench", "owner": "bench"})

        primary = load_function(stack, patch, "AuthorizerFunction")
        samples = []
        for _ in range(TRIALS[0.0]):
            key = new_key()
            assert allowed(primary, key)
            samples.append(revoked_until(revoke, key, lambda after, key=key: not allowed(primary, key)))
        rows.append(("single region, TTL 0", "-", "the next call", samples))

        with Replicator(stack) as replicator:
            regional = regional_handler(stack, "AuthorizerFunction", PEPPER_SECRET_ARN=regional_pepper(stack))
            environment = stack.function_environment("AuthorizerFunction") | CACHED
            flush = regional_handler(stack, None, "replica_flush.app.handler", **environment)
            poller = replica_stream_to(replicator, lambda event: invoke(flush, event))
            try:
                for lag in LAGS:
                    replicator.lag = lag
                    ttl0, cached = [], []
                    for _ in range(TRIALS[lag]):
                        key = new_key()
                        replicator.caught_up()
                        assert allowed(regional, key)
                        ttl0.append(revoked_until(revoke, key, lambda after, key=key: not allowed(regional, key)))
                        key = new_key()
                        replicator.caught_up()
                        cached.append(revoked_until(revoke, key, lambda after: any(at > after for at in flushes.times)))
                    rows.append(("regional, TTL 0", f"{lag * 1000:.0f} ms", "replication lag", ttl0))
                    rows.append(("regional, with the cache", f"{lag * 1000:.0f} ms", "lag plus flush", cached))
            finally:
                poller.stop()
        patch.undo()
    lines = [
        BEGIN,
        "| configuration | replication lag simulated | bound | median ms | p99 ms | trials |",
        "|---|---:|---|---:|---:|---:|",
        *(
            f"| {name} | {lag} | {bound} | {statistics.median(s) * 1000:.0f} | {p99(s) * 1000:.0f} | {len(s)} |"
            for name, lag, bound, s in rows
        ),  # fmt: skip
        "",
        measured_on("make bench-regions"),
        END,
    ]
    path = ROOT / "docs" / "multi-region.md"
    text = path.read_text()
    before, _, rest = text.partition(BEGIN)
    if not rest:
        raise SystemExit(f"docs/multi-region.md has no {BEGIN!r} marker")
    path.write_text(before + "\n".join(lines) + rest.partition(END)[2])
    print("\n".join(lines))


if __name__ == "__main__":
    main()
