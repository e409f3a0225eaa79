"""Cold start of the authorizer's package as src/Makefile builds it (its twin for this machine: same files, same
Python, keygate_local.packages), in fresh interpreters that see only the standard library and the package, with
the function's environment: a bare ``import boto3`` with one client from the package (the yardstick), the
authorizer's import and init (what Lambda's init phase runs), and a new interpreter to the authorizer's first
answer; each with the process's peak resident memory. And what the import costs, package by package."""

import json
import re
import statistics
import tempfile
from collections import Counter
from pathlib import Path

from bench.packages import without_bytecode
from keygate_local.packages import run_isolated
from keygate_local.template import HANDLER_PACKAGES

# Each snippet prints {"ms": <wall time of the measured part>, "rss_mib": <peak RSS of the process>}. The
# peak is VmHWM: ru_maxrss would keep the high-water mark of the benchmark process that forked it.
_REPORT = (
    "import json, re; hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()); "
    "print(json.dumps({'ms': (time.perf_counter() - t) * 1000, 'rss_mib': int(hwm[1]) / 1024}))"
)
SNIPPETS = {
    "bare": "import time; t = time.perf_counter(); import boto3; boto3.client('dynamodb'); " + _REPORT,
    "init": "import time; t = time.perf_counter(); import authorizer.app; " + _REPORT,
    "first_answer": (
        "import time, json, os, types; t = time.perf_counter(); import authorizer.app; "
        "context = types.SimpleNamespace(function_name='bench', memory_limit_in_mb=1024, aws_request_id='bench', "
        "invoked_function_arn='arn:aws:lambda:us-east-1:123456789012:function:bench'); "
        "authorizer.app.handler(json.loads(os.environ['BENCH_EVENT']), context); " + _REPORT
    ),
}
OUTSIDE_IMPORTS = "(outside any import)"  # the yardstick's boto3.client; the authorizer makes its clients at import


def fresh_interpreter(package: Path, snippet: str, environment: dict[str, str]) -> dict:
    return _reported(run_isolated(package, snippet, environment).stdout)


def _reported(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def cold_starts(package: Path, environment: dict[str, str], runs: int) -> dict[str, list[dict]]:
    """Runs of each snippet on the authorizer's package, of its init with tracing on (the X-Ray SDK), and of
    each snippet on the package without its bytecode: interleaved, so that a busy moment of the machine hits
    them all alike. The first answer answers the event in the environment's BENCH_EVENT."""
    with tempfile.TemporaryDirectory() as scratch:
        uncompiled = without_bytecode(package, Path(scratch) / "package")
        cases = {name: (package, snippet, environment) for name, snippet in SNIPPETS.items()}
        cases["traced init"] = (package, SNIPPETS["init"], environment | {"POWERTOOLS_TRACE_DISABLED": "false"})
        cases |= {f"{name} without bytecode": (uncompiled, snippet, environment) for name, snippet in SNIPPETS.items()}
        results: dict[str, list[dict]] = {label: [] for label in cases}
        for _ in range(runs):
            for label, (package_dir, snippet, env) in cases.items():
                results[label].append(fresh_interpreter(package_dir, snippet, env))
        return results


def _importtime(package: Path, snippet: str, environment: dict[str, str]) -> tuple[Counter, Counter]:
    """One run of ``python -X importtime``: (self, cumulative) microseconds per top-level package, first-party
    code per module. A package's cumulative time is that of its imports from outside it, with all they pulled in
    (boto3's includes botocore's)."""
    done = run_isolated(package, snippet, environment, "-X", "importtime")
    own, cumulative, outermost = Counter(), Counter(), 0
    ancestors: list[str] = []  # the groups of the imports that led to this one, outermost first
    entries = re.findall(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$", done.stderr, re.MULTILINE)
    for self_us, cumulative_us, indent, module in reversed(entries):  # as printed, an import follows its own
        depth, top = (len(indent) - 1) // 2, module.partition(".")[0]
        group = module if top in HANDLER_PACKAGES else top
        del ancestors[depth:]
        own[group] += int(self_us)
        if group not in ancestors:
            cumulative[group] += int(cumulative_us)
        outermost += int(cumulative_us) if depth == 0 else 0
        ancestors.append(group)
    own[OUTSIDE_IMPORTS] = cumulative[OUTSIDE_IMPORTS] = max(0, _reported(done.stdout)["ms"] * 1000 - outermost)
    return own, cumulative


def import_costs(package: Path, environment: dict[str, str], runs: int) -> dict[str, dict[str, tuple[float, float]]]:
    """For the yardstick and the authorizer's init: per top-level package (first-party code per module), the
    (self ms, cumulative ms) spent importing it, medians of ``runs`` interleaved runs of ``python -X importtime``."""
    measured: dict[str, list[tuple[Counter, Counter]]] = {"bare": [], "init": []}
    for _ in range(runs):
        for name, samples in measured.items():
            samples.append(_importtime(package, SNIPPETS[name], environment))
    return {
        name: {
            group: (
                statistics.median(own[group] for own, _ in samples) / 1000,
                statistics.median(cumulative[group] for _, cumulative in samples) / 1000,
            )
            for group in {group for own, _ in samples for group in own}
        }
        for name, samples in measured.items()
    }
