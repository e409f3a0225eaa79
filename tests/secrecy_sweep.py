"""The secrecy sweep, over the whole suite: every issued key and its secret part, and every pepper value,
is remembered (``remember_key``, ``remember_pepper``); every test's output (stdout, stderr, log records,
EMF metrics, whatever a test read with capsys or left for pytest, subprocesses' output included) and every
answer a handler gave after the issue is searched for them; a test that leaked one fails at its teardown,
and the session fails too, naming the test and where, never the secret. Admin answers holding an Argon2
hash fail the test at once (``checked_answer``)."""

import contextlib
import json
import re
from dataclasses import dataclass, field

import botocore.client
import pytest
from _pytest.capture import CaptureFixture

from keygate import keys

_RUN = re.compile(r"[0-9A-Za-z]{32,}")  # secrets and peppers are base62 / alphanumeric runs of this length
_WINDOWS = (keys.SECRET_LENGTH, 64)  # a key's secret part; a generated pepper


@dataclass
class Sweep:
    secrets: dict[str, str] = field(default_factory=dict)  # value -> what it is ("a key's secret part"...)
    findings: list[str] = field(default_factory=list)
    test: str = "the session"  # the test running now
    started: int = 0  # how many findings there were when it started
    swept: int = 0  # characters searched, so a test can see the sweep is looking

    def remember_key(self, api_key: str) -> None:
        """An issued key, by its secret part: in whatever text holds the key, the part is a run of its own."""
        self.secrets[api_key.rsplit("_", 1)[-1][: keys.SECRET_LENGTH]] = "an issued key's secret"

    def remember_pepper(self, value: str) -> None:
        self.secrets[value] = "a pepper"

    def found_in(self, text: str) -> list[str]:
        """What of the remembered secrets ``text`` holds (by kind)."""
        self.swept += len(text)
        found: set[str] = set()
        for run in _RUN.findall(text):
            for width in _WINDOWS:
                for start in range(max(0, len(run) - width + 1)):
                    if (kind := self.secrets.get(run[start : start + width])) is not None:
                        found.add(kind)
            if (kind := self.secrets.get(run)) is not None:
                found.add(kind)
        return sorted(found)

    def sweep(self, where: str, text: str) -> None:
        for kind in self.found_in(text):
            self.findings.append(f"{kind} reached {where} in {self.test}")


SWEEP = Sweep()


def checked_answer(answer: object) -> object:
    """An answer a handler gave: an issue's or rotation's key is remembered (it is shown this once, there);
    any other answer holding a remembered secret is a finding, and an Argon2 hash fails the test now."""
    text = json.dumps(answer, default=str)
    assert "$argon2" not in text, "an answer holds an Argon2 hash"
    if isinstance(answer, dict) and isinstance(answer.get("api_key"), str) and "notice" in answer:
        SWEEP.remember_key(answer["api_key"])
        text = json.dumps({name: value for name, value in answer.items() if name != "api_key"}, default=str)
    SWEEP.sweep("a handler's answer", text)
    return answer


def checked_error(error: BaseException) -> None:
    SWEEP.sweep("an error message", f"{type(error).__name__}: {error}")


_read = CaptureFixture.readouterr


def _teeing_readouterr(self):
    captured = _read(self)
    SWEEP.sweep("output a test read (capsys)", f"{captured.out}\n{captured.err}")
    return captured


def _remembering_generate(generate):
    """keys.generate as the tests call it: the keys they make up to present (never issued) count too."""

    def remembered(*args, **kwargs):
        new_key = generate(*args, **kwargs)
        SWEEP.remember_key(new_key.api_key)
        return new_key

    return remembered


def _remembering_api_call(make_api_call):
    """Every pepper a test writes into a pepper secret (CreateSecret, PutSecretValue) counts too."""

    def remembered(self, operation, params):
        if operation in ("CreateSecret", "PutSecretValue") and isinstance(params.get("SecretString"), str):
            with contextlib.suppress(ValueError):
                ring = json.loads(params["SecretString"])
                for version, value in ring.items() if isinstance(ring, dict) else ():
                    if version != "current" and isinstance(value, str) and len(value) >= 32:
                        SWEEP.remember_pepper(value)
        return make_api_call(self, operation, params)

    return remembered


@pytest.hookimpl
def pytest_configure(config) -> None:
    CaptureFixture.readouterr = _teeing_readouterr
    keys.generate = _remembering_generate(keys.generate)
    botocore.client.BaseClient._make_api_call = _remembering_api_call(botocore.client.BaseClient._make_api_call)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    SWEEP.test, SWEEP.started = item.nodeid, len(SWEEP.findings)
    try:
        return (yield)
    finally:
        SWEEP.test = "the session"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and report.longrepr is not None:  # what pytest prints of a failure, an assertion's operands too
        SWEEP.sweep(f"the {report.when} failure report", str(report.longrepr))
    if report.when == "teardown":
        swept_report(report)
    return report


def swept_report(report) -> None:
    """A test's last report, whose sections hold what pytest captured over the whole test (stdout, stderr,
    log records) and no test read: swept, and the test fails there if it leaked, naming where."""
    for section, text in report.sections:
        SWEEP.sweep(section.lower(), text)
    leaked = sorted(set(SWEEP.findings[SWEEP.started :]))
    if leaked and report.passed:
        report.outcome = "failed"
        report.longrepr = "secrecy sweep: " + "; ".join(leaked)
    elif leaked:  # a teardown that failed already: its error shows the findings too
        report.sections.append(("secrecy sweep", "; ".join(leaked)))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus) -> None:
    if SWEEP.findings:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = sorted(set(SWEEP.findings))
        if reporter is not None:
            reporter.write_sep("=", "secrecy sweep: secrets found in output", red=True)
            for line in lines:
                reporter.write_line(line)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
