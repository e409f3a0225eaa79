"""The Docker-free Lambda runtime: warm reuse, errors, timeouts, scaling out, and stopping."""

import io
import json
import os
import textwrap
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from keygate_local import runtime as runtime_module
from keygate_local.runtime import MAX_WORKERS_PER_FUNCTION, WorkerRuntime

HANDLERS = """
    import os, sys, time
    calls = 0

    def count(event, context):
        global calls
        calls += 1
        print("printed by the handler")  # must not corrupt the reply
        return {"pid": os.getpid(), "calls": calls, "event": event, "request_id": context.aws_request_id,
                "remaining_ms": context.get_remaining_time_in_millis(), "table": os.environ.get("KEYS_TABLE"),
                "home": os.environ.get("HOME"), "task_root": os.environ.get("LAMBDA_TASK_ROOT"),
                "process_group": os.getpgid(0)}

    def decimal(event, context):
        from decimal import Decimal
        return {"count": Decimal("3"), "ratio": Decimal("0.5"), "name": "caf\u00e9"}

    def fail(event, context):
        raise ValueError("no such thing")

    def refuse(event, context):
        raise Exception("Unauthorized")  # an authorizer's refusal, in API Gateway's contract

    def whence(event, context):
        return {"worker": sys.modules["__main__"].__file__, "path": sys.path}

    def slow(event, context):
        time.sleep(event["seconds"])
        return {"pid": os.getpid()}

    def unserialisable(event, context):
        return {"value": object()}
"""


class EnvironmentVariables:
    def __init__(self, variables: dict[str, str]):
        self._variables = variables

    def resolve(self) -> dict[str, str]:
        return dict(self._variables)


@dataclass
class FunctionConfig:
    """The part of SAM CLI's FunctionConfig the runtime reads."""

    name: str
    handler: str
    code_abs_path: str
    timeout: float = 5
    runtime: str = "python3.13"
    env_vars: EnvironmentVariables = EnvironmentVariables({"KEYS_TABLE": "table-from-template"})


class Writer:
    def __init__(self):
        self.buffer = io.StringIO()

    def write_str(self, text: str) -> None:
        self.buffer.write(text)

    def flush(self) -> None:
        pass


@pytest.fixture
def code(tmp_path: Path) -> str:
    (tmp_path / "handlers.py").write_text(textwrap.dedent(HANDLERS))
    (tmp_path / "broken.py").write_text("raise RuntimeError('cannot start')\ndef handler(event, context): return 1\n")
    return str(tmp_path)


@pytest.fixture
def runtime():
    runtime = WorkerRuntime({"EXTRA": "1"}, log=None)
    yield runtime
    runtime.close()


def call(runtime: WorkerRuntime, config: FunctionConfig, event: dict) -> dict:
    stdout = Writer()
    runtime.invoke(config, json.dumps(event), stdout=stdout)
    return json.loads(stdout.buffer.getvalue())


def test_a_warm_worker_is_reused_with_its_module_state(runtime, code):
    config = FunctionConfig("Count", "handlers.count", code)
    first, second = call(runtime, config, {"n": 1}), call(runtime, config, {"n": 2})
    assert first["pid"] == second["pid"] != os.getpid()
    assert (first["calls"], second["calls"]) == (1, 2)
    assert second["event"] == {"n": 2}
    assert first["request_id"] != second["request_id"]
    assert 0 < second["remaining_ms"] <= 5000


def test_the_worker_runs_with_the_functions_environment_and_not_the_developers(runtime, code):
    reply = call(runtime, FunctionConfig("Count", "handlers.count", code), {})
    assert reply["table"] == "table-from-template"
    assert reply["task_root"] == code
    assert reply["home"] != os.path.expanduser("~") and os.listdir(reply["home"]) == []
    assert reply["process_group"] != os.getpgid(0)  # a Ctrl-C in the terminal does not reach it


def test_decimals_are_answered_as_numbers_as_on_lambda(runtime, code):
    assert call(runtime, FunctionConfig("Dec", "handlers.decimal", code), {}) == {
        "count": 3,
        "ratio": 0.5,
        "name": "café",
    }


def test_the_worker_is_this_checkouts_and_its_package_is_not_on_the_handlers_path(runtime, code):
    reply = call(runtime, FunctionConfig("Whence", "handlers.whence", code), {})
    package = Path(runtime_module.__file__).parent
    assert reply["worker"] == str(package / "worker.py")  # not the one a venv's editable install names
    assert str(package) not in reply["path"] and code in reply["path"]


def test_an_authorizers_refusal_prints_no_traceback_and_any_other_error_does(code, tmp_path):
    printed = tmp_path / "workers.log"
    with printed.open("w") as log:
        runtime = WorkerRuntime(log=log)
        try:
            refused = call(runtime, FunctionConfig("Refuse", "handlers.refuse", code), {})
            after_refusal = printed.read_text()  # the worker prints before it answers
            failed = call(runtime, FunctionConfig("Fail", "handlers.fail", code), {})
        finally:
            runtime.close()
    assert refused["errorMessage"] == "Unauthorized" and refused["stackTrace"]  # still in the reply
    assert "Traceback" not in after_refusal
    assert failed["errorType"] == "ValueError"
    assert "Traceback" in printed.read_text() and "ValueError: no such thing" in printed.read_text()


def test_an_unexpected_failure_frees_the_workers_slot(runtime, code, monkeypatch):
    config = FunctionConfig("Count", "handlers.count", code)
    real_invoke = runtime_module.Worker.invoke
    monkeypatch.setattr(
        runtime_module.Worker, "invoke", lambda self, event, timeout: (_ for _ in ()).throw(OSError("pipe"))
    )
    for _ in range(MAX_WORKERS_PER_FUNCTION + 1):
        with pytest.raises(OSError):
            call(runtime, config, {})
    monkeypatch.setattr(runtime_module.Worker, "invoke", real_invoke)
    assert call(runtime, config, {})["calls"] == 1  # a fresh worker: the failed ones were stopped, not pooled


def test_a_raised_error_comes_back_in_the_lambda_error_shape(runtime, code):
    reply = call(runtime, FunctionConfig("Fail", "handlers.fail", code), {})
    assert set(reply) == {"errorMessage", "errorType", "stackTrace"}
    assert (reply["errorMessage"], reply["errorType"]) == ("no such thing", "ValueError")


def test_an_unserialisable_answer_is_an_error_not_a_broken_reply(runtime, code):
    assert call(runtime, FunctionConfig("Odd", "handlers.unserialisable", code), {})["errorType"] == "TypeError"


def test_an_init_error_is_reported_and_init_is_tried_again(runtime, code):
    config = FunctionConfig("Broken", "broken.handler", code)
    for _ in range(2):
        reply = call(runtime, config, {})
        assert (reply["errorType"], reply["errorMessage"]) == ("RuntimeError", "cannot start")


def test_a_timeout_stops_the_worker_and_the_next_call_gets_a_fresh_one(runtime, code):
    config = FunctionConfig("Slow", "handlers.slow", code, timeout=3)
    before = call(runtime, config, {"seconds": 0})["pid"]
    reply = call(runtime, config, {"seconds": 60})
    assert reply["errorType"] == "Sandbox.Timedout" and "timed out" in reply["errorMessage"]
    after = call(runtime, config, {"seconds": 0})["pid"]
    assert after != before


def test_concurrent_calls_scale_out_to_more_workers_and_no_further(runtime, code):
    config = FunctionConfig("Slow", "handlers.slow", code, timeout=20)
    calls = MAX_WORKERS_PER_FUNCTION + 2
    replies: list[dict] = []
    barrier = threading.Barrier(calls)

    def one():
        barrier.wait()
        replies.append(call(runtime, config, {"seconds": 0.5}))

    threads = [threading.Thread(target=one) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(replies) == calls
    assert 1 < len({reply["pid"] for reply in replies}) <= MAX_WORKERS_PER_FUNCTION


def test_close_stops_every_worker(code):
    runtime = WorkerRuntime()
    pid = call(runtime, FunctionConfig("Count", "handlers.count", code), {})["pid"]
    runtime.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
