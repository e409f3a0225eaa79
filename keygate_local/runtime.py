"""SAM CLI's Lambda runtime, without Docker: warm worker processes instead of containers.

``LocalLambdaRunner`` hands every invocation to ``WorkerRuntime.invoke`` with the function's config
(handler, CodeUri, timeout, environment resolved from the template). Each function gets a pool of
worker processes (``keygate_local.worker``); an idle worker is reused, so in-memory caches behave as in
warm Lambda containers, and a new one starts when all are busy, as Lambda scales out.
"""

import json
import logging
import os
import platform
import selectors
import shutil
import subprocess  # nosec B404 # starts the worker processes, argv lists, never a shell
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import IO

LOG = logging.getLogger(__name__)
MAX_WORKERS_PER_FUNCTION = 4
# Run by its path, so the worker is this checkout's, not whichever one the venv's editable install names;
# -P keeps its directory (this package) off the handler's import path.
WORKER = str(Path(__file__).with_name("worker.py"))


class WorkerFailed(RuntimeError):
    """The worker died or ran past the function's timeout; it has been stopped."""

    def __init__(self, message: str, error_type: str = "Runtime.ExitError"):
        super().__init__(message)
        self.error_type = error_type


class Worker:
    def __init__(self, handler: str, code_dir: str, environment: dict[str, str], log: IO | None):
        self.process = subprocess.Popen(  # nosec B603 # this Python, our worker module, a handler of the template
            [sys.executable, "-P", WORKER, handler],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=code_dir,
            env=environment,
            process_group=0,  # a Ctrl-C in the terminal is the stack's to handle, not each worker's
        )
        self._pending = b""

    def invoke(self, event: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        request = {"event": event, "request_id": str(uuid.uuid4()), "deadline": time.time() + timeout}
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            self.stop()
            raise WorkerFailed("the worker process had exited") from None
        return self._read_reply(deadline, timeout)

    def _read_reply(self, deadline: float, timeout: float) -> str:
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while b"\n" not in self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    self.stop()
                    raise WorkerFailed(f"Task timed out after {timeout:.2f} seconds", "Sandbox.Timedout")
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    self.stop()
                    raise WorkerFailed("the worker process exited during the invocation")
                self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Kill the worker; safe to call more than once."""
        if self.alive:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            stream.close()


class WorkerRuntime:
    """The ``local_runtime`` SAM CLI's LocalLambdaRunner calls; one pool of warm workers per function."""

    def __init__(self, extra_environment: dict[str, str] | None = None, log: IO | None = None):
        self._extra_environment = extra_environment or {}
        self._log = log
        self._idle: dict[str, list[Worker]] = {}
        self._live: dict[str, int] = {}
        self._workers: set[Worker] = set()
        self._changed = threading.Condition()
        self._closed = False
        self._home = tempfile.mkdtemp(prefix="keygate-local-home-")  # not the developer's ~/.aws

    def invoke(self, function_config, event: str, tenant_id=None, *, stdout=None, stderr=None, **_container_options):
        worker = self._acquire(function_config)
        try:
            reply = worker.invoke(event, float(function_config.timeout or 3))
        except WorkerFailed as error:
            reply = json.dumps({"errorMessage": str(error), "errorType": error.error_type, "stackTrace": []})
        except BaseException:
            worker.stop()  # in an unknown state: never reuse it
            raise
        finally:
            self._release(function_config.name, worker)
        stdout.write_str(reply)
        stdout.flush()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            workers = list(self._workers)
            self._workers.clear()
            self._changed.notify_all()
        for worker in workers:
            worker.stop()
        shutil.rmtree(self._home, ignore_errors=True)

    def _environment(self, function_config) -> dict[str, str]:
        """What Lambda gives a function, as far as a handler can tell, plus the template's variables."""
        runtime = function_config.runtime or ""
        if runtime != f"python{sys.version_info.major}.{sys.version_info.minor}":
            LOG.warning("%s declares %s; the local stack runs it on Python %s", function_config.name, runtime,
                        platform.python_version())  # fmt: skip
        return {
            **function_config.env_vars.resolve(),
            "PATH": os.environ.get("PATH", ""),
            "HOME": self._home,
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": function_config.code_abs_path,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
            "_HANDLER": function_config.handler,
            "PYTHONPATH": function_config.code_abs_path,
            "PYTHONDONTWRITEBYTECODE": "1",  # keep __pycache__ out of the CodeUri
            "PYTHONUNBUFFERED": "1",
            **self._extra_environment,
        }

    def _acquire(self, function_config) -> Worker:
        name = function_config.name
        with self._changed:
            while True:
                if self._closed:
                    raise WorkerFailed("the local runtime is shut down")
                idle = self._idle.setdefault(name, [])
                while idle:
                    worker = idle.pop()
                    if worker.alive:
                        return worker
                    self._forget(name, worker)
                if self._live.get(name, 0) < MAX_WORKERS_PER_FUNCTION:
                    self._live[name] = self._live.get(name, 0) + 1
                    break
                self._changed.wait()
        try:
            environment = self._environment(function_config)
            worker = Worker(function_config.handler, function_config.code_abs_path, environment, self._log)
        except BaseException:
            with self._changed:
                self._live[name] -= 1
                self._changed.notify_all()
            raise
        with self._changed:
            closed = self._closed
            if not closed:
                self._workers.add(worker)
        if closed:  # close() ran while this worker started: it must not outlive the runtime
            self._release(name, worker)
            raise WorkerFailed("the local runtime is shut down")
        return worker

    def _release(self, name: str, worker: Worker) -> None:
        with self._changed:
            keep = worker.alive and not self._closed
            if keep:
                self._idle[name].append(worker)
            else:
                self._forget(name, worker)
            self._changed.notify_all()
        if not keep:
            worker.stop()

    def _forget(self, name: str, worker: Worker) -> None:
        self._live[name] -= 1
        self._workers.discard(worker)
