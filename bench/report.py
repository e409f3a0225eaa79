"""Markdown tables of timings, shared by the benchmarks."""

import os
import platform
import statistics
from datetime import UTC, datetime
from pathlib import Path

HEADER = ["| what | median ms | p99 ms | runs |", "|---|---:|---:|---:|"]


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


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
