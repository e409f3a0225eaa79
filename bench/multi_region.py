"""The revocation bound across regions, measured on the two-region simulation (tests/helpers/regions.py):
from the revoke call in the primary to the first request the region's authorizer refuses (AuthorizerCacheTtl
0), or to the region's flush of its own cached answers for that revocation having reached API Gateway (with
the cache). Writes the table in docs/multi-region.md between its markers. About two minutes."""

import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import botocore.client
import pytest
from moto import mock_aws

from bench.report import measured_on, p99
from keygate_local.template import load_template
from tests.conftest import create_stack, invoke, load_function
from tests.helpers.authorizer import decide, shaped
from tests.helpers.regions import Replicator, regional_handler, regional_stack, replica_stream_to

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- bound:begin (bench/multi_region.py writes this) -->", "<!-- bound:end -->"
LAGS = (0.0, 0.2, 2.0)  # simulated replication lag, seconds: none, a typical one, a slow one
TRIALS = {0.0: 20, 0.2: 20, 2.0: 5}
CACHED = {"AuthorizerCacheTtl": 300, "CachedStages": "rest:a1b2c3d4e5/prod"}  # the regional flush's


def allowed(authorizer, key: dict) -> bool:
    return decide(authorizer, shaped("rest-token", authorization=f"Bearer {key['api_key']}"))[0]


def answer_flushes() -> None:
    """Flush calls answered as API Gateway answers them (moto has no authorizer cache)."""
    real = botocore.client.BaseClient._make_api_call

    def answering(client, operation, params):
        if operation in ("FlushStageAuthorizersCache", "ResetAuthorizersCache"):
            return {}
        return real(client, operation, params)

    botocore.client.BaseClient._make_api_call = answering


def revoked_until(revoke, key: dict, seen) -> float:
    """Seconds from the revoke call to ``seen()`` holding."""
    started = time.monotonic()
    invoke(revoke, {"key_id": key["key_id"]})
    while not seen():
        assert time.monotonic() - started < 30, "never seen"
        time.sleep(0.001)  # the replicator and the stream poller are threads of this process
    return time.monotonic() - started


def main() -> None:
    os.environ |= {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}  # fmt: skip
    rows = []
    with mock_aws():
        answer_flushes()  # inside: moto patches botocore as it starts
        stack, patch = create_stack(load_template()), pytest.MonkeyPatch()
        issue, revoke = (load_function(stack, patch, f"{name}Function") for name in ("IssueKey", "RevokeKey"))

        def new_key() -> dict:
            return invoke(issue, {"name": "bench", "owner": "bench"})

        primary = load_function(stack, patch, "AuthorizerFunction")
        samples = []
        for _ in range(TRIALS[0.0]):
            key = new_key()
            assert allowed(primary, key)
            samples.append(revoked_until(revoke, key, lambda key=key: not allowed(primary, key)))
        rows.append(("single region, TTL 0", "-", "the next call", samples))

        with Replicator(stack) as replicator:
            regional = regional_handler(regional_stack(stack, replicator.replica_stream), "AuthorizerFunction")
            flushing = regional_stack(stack, replicator.replica_stream, **CACHED)
            flush = regional_handler(flushing, "ReplicaFlushFunction")
            from keygate import replicated_changes  # as the regional handler loaded it

            flushed: set[str] = set()  # keys whose stale change the region's flush function has handled

            def flush_and_note(event: dict) -> None:
                invoke(flush, event)  # raises if the flush failed: then nothing is noted
                flushed.update(replicated_changes.stale_keys(event["Records"], datetime.now(UTC)))

            poller = replica_stream_to(replicator, flush_and_note)
            try:
                for lag in LAGS:
                    replicator.lag = lag
                    ttl0, cached = [], []
                    for _ in range(TRIALS[lag]):
                        key = new_key()
                        replicator.caught_up()
                        assert allowed(regional, key)
                        ttl0.append(revoked_until(revoke, key, lambda key=key: not allowed(regional, key)))
                        key = new_key()
                        replicator.caught_up()
                        cached.append(revoked_until(revoke, key, lambda key=key: key["key_id"] in flushed))
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
        ),
        "",
        measured_on("make bench-regions"),
        END,
    ]
    path = ROOT / "docs" / "multi-region.md"
    before, _, rest = path.read_text().partition(BEGIN)
    if not rest:
        raise SystemExit(f"docs/multi-region.md has no {BEGIN!r} marker")
    path.write_text(before + "\n".join(lines) + rest.partition(END)[2])
    print("\n".join(lines))


if __name__ == "__main__":
    main()
