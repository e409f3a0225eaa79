"""An alert of leaked tokens worked through within a time budget.

An alert may hold 1000 tokens, and anyone can publish strings in keygate's format, with key ids they
know, for GitHub to find and sign. So the work is bounded: each distinct token is checked once per
alert; a token of a key already revoked costs no Argon2 (the checker's job); and once the budget is
spent no further token is started. What was checked is done (revoked, announced, and the authorizer
cache flushed once), and GitHub's retry of the whole alert finds it so: revoked keys cost a read each,
and the container's verified-key cache remembers what Argon2 refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from keygate.authorizer_cache import FlushReport
from keygate.leaks import LeakFinding, LeakReport

if TYPE_CHECKING:
    from keygate.service import Changed


@dataclass(frozen=True)
class Checked:
    """One token's finding, and its key's revocation (None: a false positive), whose flush may be due."""

    finding: LeakFinding
    revocation: Changed | None = None

    @property
    def flush_due(self) -> bool:
        return self.revocation is not None and self.revocation.flush_due


class BudgetSpent(RuntimeError):
    """The alert's time budget ran out with tokens not checked. ``findings``: those checked, all done."""

    def __init__(self, findings: list[tuple[LeakReport, LeakFinding]], distinct: int):
        super().__init__(
            f"the time budget ran out after {len(findings)} of {distinct} distinct tokens: retry the alert"
        )
        self.findings = findings


def work_through(
    reports: Sequence[LeakReport],
    check: Callable[[LeakReport], Checked],
    flush: Callable[[], FlushReport | None],
    budget: float | None = None,
) -> list[LeakFinding]:
    """A finding for each report, in order. ``check`` runs once per distinct token, none starting after the
    budget (seconds) is spent; ``flush`` runs once if any check left a flush due, even when the budget ran
    out (BudgetSpent) or a check failed."""
    deadline = None if budget is None else time.monotonic() + budget
    checked: dict[str, Checked] = {}
    spent = False
    try:
        for report in reports:
            if report.token in checked:
                continue
            if deadline is not None and time.monotonic() >= deadline:
                spent = True
                break
            checked[report.token] = check(report)
    finally:
        _flush_once(checked, flush)
    if spent:
        first = {report.token: report for report in reversed(reports)}
        raise BudgetSpent([(first[token], done.finding) for token, done in checked.items()], len(first))
    return [replace(checked[report.token].finding, token_type=report.token_type) for report in reports]


def _flush_once(checked: dict[str, Checked], flush: Callable[[], FlushReport | None]) -> None:
    """Flush for every revocation whose flush is due, once, and put what it did in their findings."""
    due = [token for token, done in checked.items() if done.flush_due]
    flushed = flush() if due else None
    for token in due:
        done = checked[token]
        effects = replace(done.revocation, authorizer_cache=flushed).reports()
        checked[token] = replace(done, finding=replace(done.finding, effects=effects))
