"""Markdown tables of timings, shared by the benchmarks."""

import os
import platform
import statistics
from datetime import UTC, datetime
from pathlib import Path

HEADER = ["| what | median ms | p95 ms | runs |", "|---|---:|---:|---:|"]


def row(label: str, samples_ms: list[float]) -> str:
    samples = sorted(samples_ms)
    p95 = samples[min(len(samples) - 1, int(0.95 * len(samples)))]
    return f"| {label} | {statistics.median(samples):.1f} | {p95:.1f} | {len(samples)} |"


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
