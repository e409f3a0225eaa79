"""Cost per million authorizations, and of provisioned concurrency, from the figures `make bench` measured
(docs/benchmarks.json) and the published prices below; writes README's "What it costs" section and
docs/operations.md's provisioned concurrency figures between their markers.

Run: .venv/bin/python -m bench.cost   (after bench.authorizer)
"""

import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- cost:begin (bench/cost.py writes this) -->", "<!-- cost:end -->"
PC_BEGIN, PC_END = (
    "<!-- provisioned-concurrency:begin (bench/cost.py writes this) -->",
    "<!-- provisioned-concurrency:end -->",
)

# Published on-demand prices, us-east-1, as of 2026-11 (aws.amazon.com/<service>/pricing).
LAMBDA_ARM_GB_SECOND = 0.0000133334  # first 7.5 billion GB-seconds a month
LAMBDA_PER_MILLION_REQUESTS = 0.20
# Provisioned concurrency, arm64 (aws.amazon.com/lambda/pricing, "Provisioned Concurrency Pricing"): per GB-second
# an environment is provisioned, used or not, and per GB-second of the invocations it serves (which then cost
# this, not LAMBDA_ARM_GB_SECOND; requests cost the same). Billed from enabling to disabling, by 5 minutes.
LAMBDA_ARM_PROVISIONED_GB_SECOND = 0.0000033334
LAMBDA_ARM_PROVISIONED_DURATION_GB_SECOND = 0.0000077778
HOURS_PER_MONTH = 730
DYNAMODB_PER_MILLION_READ_UNITS = 0.125  # on-demand; a strongly consistent read of an item up to 4 KB is 1 unit
SECRETS_MANAGER_PER_10K_CALLS = 0.05
API_GATEWAY_REST_PER_MILLION = 3.50  # first 333 million a month
API_GATEWAY_HTTP_PER_MILLION = 1.00  # first 300 million a month
# Assumptions, not measurements: the wait for one GetItem in-region, and Lambda's CPU share (one vCPU at 1769 MB).
GETITEM_MS = 4.0
FULL_VCPU_MB = 1769
PEPPER_READS_PER_MILLION = 100  # a few warm containers re-reading every 300 s while a million calls go by


def lambda_ms(compute_ms: float, memory_mb: int) -> int:
    """Billed ms of one invocation: compute scaled to the CPU share, the GetItem wait, rounded up to 1 ms."""
    return math.ceil(compute_ms * FULL_VCPU_MB / memory_mb + GETITEM_MS)


def per_million(figures: dict, hit_ratio: float, invoked_share: float = 1.0) -> dict[str, float]:
    """Dollars per million authorizations; invoked_share is the part API Gateway's cache does not answer."""
    memory_mb = figures["memory_size_mb"]
    hit_ms, miss_ms = lambda_ms(figures["hit_ms_memory"], memory_mb), lambda_ms(figures["miss_ms_memory"], memory_mb)
    invocations = 1e6 * invoked_share
    gb_seconds = invocations * (hit_ratio * hit_ms + (1 - hit_ratio) * miss_ms) / 1000 * memory_mb / 1024
    return {
        "lambda": invocations / 1e6 * LAMBDA_PER_MILLION_REQUESTS + gb_seconds * LAMBDA_ARM_GB_SECOND,
        "dynamodb": invocations / 1e6 * DYNAMODB_PER_MILLION_READ_UNITS,
        "secrets": PEPPER_READS_PER_MILLION / 1e4 * SECRETS_MANAGER_PER_10K_CALLS,
        "gb_seconds": gb_seconds,
    }


def section(figures: dict) -> list[str]:
    memory_mb = figures["memory_size_mb"]
    rows = []
    for label, hit_ratio, invoked in (
        ("0% (every call verifies with Argon2)", 0.0, 1.0),
        ("90%", 0.9, 1.0),
        ("99%", 0.99, 1.0),
        ("99%, and API Gateway's authorizer cache answers 90% of calls", 0.99, 0.1),
    ):
        cost = per_million(figures, hit_ratio, invoked)
        total = cost["lambda"] + cost["dynamodb"] + cost["secrets"]
        rows.append(
            f"| {label} | {cost['gb_seconds']:,.0f} | ${cost['lambda']:.3f} | ${cost['dynamodb']:.3f} | "
            f"${cost['secrets']:.4f} | **${total:.2f}** |"
        )
    return [
        BEGIN,
        f"Per million authorizations, on arm64 at the template's {memory_mb} MB, computed by `bench/cost.py` from",
        "[docs/benchmarks.json](docs/benchmarks.json) (what `make bench` measured: a cache hit's and a miss's",
        f"compute) and these prices (us-east-1, on demand): Lambda ${LAMBDA_ARM_GB_SECOND:.10f} per GB-second and",
        f"${LAMBDA_PER_MILLION_REQUESTS:.2f} per million requests, DynamoDB ${DYNAMODB_PER_MILLION_READ_UNITS} per "
        "million read units (one strongly",
        f"consistent GetItem of a key is one unit), Secrets Manager ${SECRETS_MANAGER_PER_10K_CALLS} per 10,000 calls. "
        "Assumed, not",
        f"measured: a GetItem waits {GETITEM_MS:.0f} ms in-region; compute scales by {FULL_VCPU_MB}/MemorySize; "
        f"about {PEPPER_READS_PER_MILLION} pepper reads",
        "per million calls. Cache hit ratio is keygate's verified-key cache (per container).",
        "",
        "| verified-key cache hits | Lambda GB-s | Lambda | DynamoDB | Secrets Manager | keygate total |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Beside what API Gateway itself charges per million calls: REST API ${API_GATEWAY_REST_PER_MILLION:.2f}, "
        f"HTTP API ${API_GATEWAY_HTTP_PER_MILLION:.2f}.",
        "Lambda also bills each cold start's init phase (about "
        f"{figures['init_ms'] / 1000 * FULL_VCPU_MB / 1024:.1f} GB-s: measured here, scaled by "
        f"{FULL_VCPU_MB}/MemorySize), a few per container's life.",
        "With API Gateway's authorizer cache on (`AuthorizerCacheTtl` > 0) keygate is invoked only when API",
        "Gateway has no answer cached; list its stages in `CachedStages` so a revocation flushes them",
        "([docs/operations.md](docs/operations.md#api-gateways-authorizer-cache)).",
        END,
    ]


def provisioned_concurrency(figures: dict) -> dict[str, float]:
    """One provisioned environment of the authorizer: its price a month, the share of the time it must be busy
    to cost no more than the same invocations on demand, and how many cache hits a second keep it that busy."""
    memory_mb = figures["memory_size_mb"]
    busy_share = LAMBDA_ARM_PROVISIONED_GB_SECOND / (LAMBDA_ARM_GB_SECOND - LAMBDA_ARM_PROVISIONED_DURATION_GB_SECOND)
    return {
        "per_month": memory_mb / 1024 * HOURS_PER_MONTH * 3600 * LAMBDA_ARM_PROVISIONED_GB_SECOND,
        "busy_share": busy_share,
        "hits_per_second": busy_share * 1000 / lambda_ms(figures["hit_ms_memory"], memory_mb),
    }


def provisioned_concurrency_section(figures: dict) -> list[str]:
    memory_mb = figures["memory_size_mb"]
    unit = provisioned_concurrency(figures)
    cpu_share = FULL_VCPU_MB / memory_mb
    return [
        PC_BEGIN,
        f"| at the template's {memory_mb} MB, arm64, us-east-1 | |",
        "|---|---:|",
        f"| one provisioned environment for a month ({HOURS_PER_MONTH} hours at "
        f"${LAMBDA_ARM_PROVISIONED_GB_SECOND:.10f} per GB-second) | **${unit['per_month']:.2f}** |",
        f"| the invocations it serves, per GB-second (on demand: ${LAMBDA_ARM_GB_SECOND:.10f}) | "
        f"${LAMBDA_ARM_PROVISIONED_DURATION_GB_SECOND:.10f} |",
        f"| busy share above which it costs less than on demand | {unit['busy_share']:.0%} |",
        f"| verified-key cache hits a second that keep it that busy ({lambda_ms(figures['hit_ms_memory'], memory_mb)} "
        f"ms billed each) | {unit['hits_per_second']:.0f} |",
        f"| what it saves a request: import and init, measured here, scaled by {FULL_VCPU_MB}/{memory_mb} | "
        f"{figures['init_ms'] / 1000 * cpu_share:.1f} s |",
        f"| what it does not: a key's first request in each environment, one Argon2 verify, scaled alike | "
        f"{figures['argon2']['argon2_ms'] * cpu_share:.0f} ms |",
        PC_END,
    ]


def write_between(path: Path, begin: str, end: str, lines: list[str]) -> None:
    """Replace what ``path`` holds between its ``begin`` and ``end`` markers, markers included, by ``lines``."""
    text = path.read_text()
    before, _, rest = text.partition(begin)
    _, _, after = rest.partition(end)
    if not rest:
        raise SystemExit(f"{path.relative_to(ROOT)} has no {begin!r} marker")
    path.write_text(before + "\n".join(lines) + after)


def main() -> None:
    figures = json.loads((ROOT / "docs" / "benchmarks.json").read_text())
    for path, begin, end, lines in (
        (ROOT / "README.md", BEGIN, END, section(figures)),
        (ROOT / "docs" / "operations.md", PC_BEGIN, PC_END, provisioned_concurrency_section(figures)),
    ):
        write_between(path, begin, end, lines)
        print("\n".join(lines))


if __name__ == "__main__":
    main()
