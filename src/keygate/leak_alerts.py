"""A leak alert worked through within a time budget.

An alert may hold 1000 tokens, and anyone can publish strings in keygate's format, with key ids they
know, for GitHub to find and sign. So the work is bounded:
- each distinct token is settled once per alert, in a random order (so that a retry on a container that
  remembers nothing still reaches other ones first);
- every token is first looked up (one read per key id per alert): a malformed one, an unknown key's or a
  revoked key's is settled there, with no Argon2 and no write;
- the tokens left need Argon2 (and a container's verified-key cache remembers what Argon2 refused);
- once the budget is spent no further token is started. What was settled is done (revoked, announced,
  and the authorizer cache flushed once), and GitHub's retry of the whole alert finds it so.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from keygate.authorizer_cache import FlushReport
from keygate.leaks import LeakFinding, LeakReport

if TYPE_CHECKING:
    from keygate.lifecycle import Changed

_SHUFFLE = random.SystemRandom()  # an order no publisher of tokens can predict


@dataclass(frozen=True)
class TokenOutcome:
    """A token's finding, its key's revocation if this alert made one, and whether a flush is due for it."""

    finding: LeakFinding
    revocation: Changed | None = None
    flush_due: bool = False


class BudgetSpent(RuntimeError):
    """The alert's time budget ran out with tokens not settled. ``findings``: those settled, all done."""

    def __init__(self, findings: list[tuple[LeakReport, LeakFinding]], distinct: int):
        super().__init__(
            f"the time budget ran out after {len(findings)} of {distinct} distinct tokens: retry the alert"
        )
        self.findings = findings


def work_through(
    reports: Sequence[LeakReport],
    look_up: Callable[[LeakReport], TokenOutcome | None],
    verify: Callable[[LeakReport], TokenOutcome],
    flush: Callable[[], FlushReport | None],
    budget: float | None = None,
) -> list[LeakFinding]:
    """A finding for each report, in order. ``look_up`` settles a token without Argon2, or answers None;
    ``verify`` then settles it with Argon2. Nothing starts after ``budget`` seconds (BudgetSpent); ``flush``
    runs once if any token left a flush due, even when the budget ran out or a step failed."""
    deadline = None if budget is None else time.monotonic() + budget
    first = {report.token: report for report in reversed(reports)}  # each token's first report
    settled: dict[str, TokenOutcome] = {}
    spent = False
    try:
        costly, tokens = [], list(first)
        _SHUFFLE.shuffle(tokens)
        for token, report in ((token, first[token]) for token in tokens):
            if spent := _over(deadline):
                break
            outcome = look_up(report)
            settled |= {token: outcome} if outcome is not None else {}
            costly += [report] if outcome is None else []
        for report in costly if not spent else []:
            if spent := _over(deadline):
                break
            settled[report.token] = verify(report)
    finally:
        _flush_once(settled, flush)
    if spent:
        raise BudgetSpent([(first[token], done.finding) for token, done in settled.items()], len(first))
    return [replace(settled[report.token].finding, token_type=report.token_type) for report in reports]


def _over(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _flush_once(settled: dict[str, TokenOutcome], flush: Callable[[], FlushReport | None]) -> None:
    """Flush for every token whose flush is due, once, and put what it did in their findings."""
    due = [token for token, done in settled.items() if done.flush_due]
    flushed = flush() if due else None
    for token in due:
        done = settled[token]
        if done.revocation is not None:
            effects = replace(done.revocation, authorizer_cache=flushed).reports()
        else:
            effects = {"authorizer_cache": flushed.view()} if flushed else {}
        settled[token] = replace(done, finding=replace(done.finding, effects=done.finding.effects | effects))
