"""Cold start, in fresh interpreters on this machine: a bare ``import boto3`` with one client (the
yardstick), the authorizer's import and init (what Lambda's init phase runs), and a new interpreter
to the authorizer's first answer; each with the process's peak resident memory."""

import json
import os
import subprocess
import sys

from keygate_local.template import ROOT

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


def fresh_interpreter(snippet: str, environment: dict[str, str]) -> dict:
    env = environment | {"PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-c", snippet], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def cold_starts(environment: dict[str, str], event: dict, runs: int) -> dict[str, list[dict]]:
    """Interleaved runs of each snippet, so a busy moment of the machine hits all three alike."""
    env = environment | {"BENCH_EVENT": json.dumps(event)}
    results: dict[str, list[dict]] = {name: [] for name in SNIPPETS}
    for _ in range(runs):
        for name, snippet in SNIPPETS.items():
            results[name].append(fresh_interpreter(snippet, env))
    return results
