"""Markdown tables of timings, shared by the benchmarks."""

import math
import os
import platform
import statistics
from datetime import UTC, datetime
from pathlib import Path

HEADER = ["| what | median ms | p99 ms | runs |", "|---|---:|---:|---:|"]


def percentile(samples: list[float], p: float) -> float:
    """Nearest rank: the smallest sample with at least p% of the samples at or below it."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def p99(samples: list[float]) -> float:
    return percentile(samples, 99)


def row(label: str, samples_ms: list[float], digits: int = 1) -> str:
    return (
        f"| {label} | {statistics.median(samples_ms):.{digits}f} | {p99(samples_ms):.{digits}f} | {len(samples_ms)} |"
    )


def measured_on(command: str) -> str:
    return (
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, by `{command}`."
    )


def publish(page: str, lines: list[str]) -> None:
    """Write the page under docs/ and show it."""
    text = "\n".join(lines)
    (Path(__file__).resolve().parent.parent / "docs" / page).write_text(text)
    print(text)
