"""What the benchmarks call the local stack with: its admin functions through the Lambda Invoke API, and
HTTP requests from concurrent clients."""

import math
import threading
import time
from collections.abc import Callable, Iterable

import boto3
import requests
from botocore.config import Config


def lambda_client(endpoint: str):
    """The local stack's Lambda Invoke API (which checks no signature), as the CLI calls it; one attempt."""
    return boto3.client(
        "lambda", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(connect_timeout=5, read_timeout=60, retries={"mode": "standard", "total_max_attempts": 1}),
    )  # fmt: skip


def run_concurrently[T, R](
    work: Iterable[T],
    clients: int,
    call: Callable[[requests.Session, T], R],
    deadline: float = math.inf,
    progress: Callable[[list[R], float], None] | None = None,
) -> tuple[list[R], float]:
    """``call`` on each item of ``work`` from ``clients`` threads, each with a session of its own, started
    together; none takes an item after ``deadline`` (time.monotonic). (The results, seconds it took.)
    ``progress`` is shown the results so far and the seconds elapsed every 5 s and at the end. The first
    exception a call raises is raised here, once every client has stopped."""
    results: list[R] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    remaining = iter(work)
    start = threading.Barrier(clients + 1)

    def client() -> None:
        with requests.Session() as session:
            start.wait()
            while time.monotonic() < deadline and not errors:
                with lock:
                    item = next(remaining, None)
                if item is None:
                    return
                try:
                    result = call(session, item)
                except Exception as error:
                    errors.append(error)
                    return
                with lock:
                    results.append(result)

    threads = [threading.Thread(target=client, name=f"bench-client-{n}", daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    shown = began
    while alive := [thread for thread in threads if thread.is_alive()]:
        alive[0].join(timeout=1)
        finished = not any(thread.is_alive() for thread in threads)
        if progress is not None and (time.perf_counter() - shown >= 5 or finished):
            shown = time.perf_counter()
            with lock:
                so_far = list(results)
            progress(so_far, shown - began)
    if errors:
        raise errors[0]
    return results, time.perf_counter() - began
