"""bench/clients.py's concurrent loop, which make load and make bench measure with: every item done once,
an error in a client raised, not lost in its thread, and no item taken after the deadline."""

import threading
import time

import pytest

from bench.clients import run_concurrently


def test_every_item_is_called_once_across_the_clients():
    threads = set()

    def call(session, item):
        threads.add(threading.current_thread().name)
        time.sleep(0.001)
        return item * 2

    results, seconds = run_concurrently(range(200), 4, call)
    assert sorted(results) == [n * 2 for n in range(200)] and seconds > 0
    assert len(threads) > 1


def test_a_clients_error_is_raised_once_every_client_has_stopped():
    def call(session, item):
        if item == 7:
            raise RuntimeError("answered 500")
        return item

    with pytest.raises(RuntimeError, match="answered 500"):
        run_concurrently(range(100), 3, call)


def test_no_item_is_taken_after_the_deadline_and_progress_sees_the_results():
    shown = []

    def slow(session, item):
        time.sleep(0.01)

    results, _ = run_concurrently(range(1000), 2, slow, time.monotonic() + 0.2, lambda r, s: shown.append(len(r)))
    assert 0 < len(results) < 1000
    assert shown and shown[-1] == len(results)  # shown at the end too
