"""The suite-wide secrecy sweep (tests/secrecy_sweep.py) finds what it must, where it must: so a clean
session means no issued key, secret part or pepper reached any output."""

import secrets
from pathlib import Path
from types import SimpleNamespace

import pytest

from keygate import keys
from tests import secrecy_sweep
from tests.conftest import add_pepper_version, invoke
from tests.secrecy_sweep import Sweep


@pytest.fixture
def sweep(monkeypatch) -> Sweep:
    """A sweep of its own, so the leaks these tests make on purpose do not fail the session."""
    local = Sweep()
    monkeypatch.setattr(secrecy_sweep, "SWEEP", local)
    return local


def test_it_finds_a_key_its_secret_part_and_a_pepper_in_any_text():
    sweep, key, pepper = Sweep(), keys.generate("kg").api_key, secrets.token_hex(32)
    sweep.remember_key(key)
    sweep.remember_pepper(pepper)
    secret = keys.parse(key, "kg").secret
    assert sweep.found_in(f'{{"message": "x", "key": "{key}"}}') == ["an issued key's secret"]
    assert sweep.found_in(f"secret={secret};") == ["an issued key's secret"]
    assert sweep.found_in(f"pepper:{pepper}\n") == ["a pepper"]
    assert sweep.found_in(f"glued{secret}glued") == ["an issued key's secret"]  # inside a longer run too
    assert sweep.found_in(keys.generate("kg").api_key + " " + secrets.token_hex(32)) == []


def test_what_a_test_reads_with_capsys_is_swept(sweep, capsys):
    key = keys.generate("kg").api_key
    sweep.remember_key(key)
    print(f"oops {key}")
    capsys.readouterr()
    assert sweep.findings and "capsys" in sweep.findings[0]


def test_what_pytest_captured_is_swept_and_fails_the_test_that_leaked_it(sweep):
    sweep.remember_pepper("p" * 64)
    report = SimpleNamespace(sections=[("Captured stderr call", "x " + "p" * 64)], passed=True, outcome="passed")
    secrecy_sweep.swept_report(report)
    assert sweep.findings == [f"a pepper reached captured stderr call in {sweep.test}"]
    assert report.outcome == "failed" and report.longrepr == f"secrecy sweep: {sweep.findings[0]}"
    clean = SimpleNamespace(sections=[("Captured stdout call", "nothing")], passed=True, outcome="passed")
    sweep.started = len(sweep.findings)  # a later test, which leaked nothing
    secrecy_sweep.swept_report(clean)
    assert clean.outcome == "passed"


def test_a_key_is_remembered_from_the_answer_that_shows_it_and_looked_for_in_every_other(sweep):
    key = keys.generate("kg").api_key
    sweep.secrets.clear()  # keys.generate remembers the keys tests make up; here, only the answer may
    invoke(lambda event, context: {"key_id": "K", "api_key": key, "notice": "shown this once"}, {})
    assert sweep.secrets and sweep.findings == []  # shown once, where it is meant to be
    invoke(lambda event, context: {"key_id": "K", "note": f"your key was {key}"}, {})
    assert sweep.findings == [f"an issued key's secret reached a handler's answer in {sweep.test}"]


def test_an_answer_with_a_hash_fails_at_once(sweep):
    with pytest.raises(AssertionError, match="Argon2 hash"):
        invoke(lambda event, context: {"hash": "$argon2id$v=19$m=19456,t=2,p=1$salt$hash"}, {})


def test_the_session_sweep_is_looking(issued, capsys):
    key = issued()
    assert secrecy_sweep.SWEEP.secrets.get(keys.parse(key["api_key"], "kg").secret) == "an issued key's secret"
    swept = secrecy_sweep.SWEEP.swept
    print("some output")
    capsys.readouterr()
    assert secrecy_sweep.SWEEP.swept > swept


def test_keys_a_test_makes_up_and_peppers_it_writes_are_remembered_too(sweep, stack):
    made_up = keys.generate("kg")
    assert sweep.secrets.get(made_up.secret) == "an issued key's secret"
    add_pepper_version(stack, "v7")
    assert sweep.secrets.get("v" * 64) == "a pepper"


def test_a_pytest_run_fails_the_very_test_that_printed_a_secret_and_no_other(pytester, monkeypatch):
    root = Path(__file__).resolve().parent.parent
    monkeypatch.setenv("PYTHONPATH", f"{root}:{root / 'src'}")
    pytester.makepyfile(
        test_planted="""
        from tests import secrecy_sweep

        def test_prints_a_pepper():
            secrecy_sweep.SWEEP.remember_pepper("q" * 64)
            print("pepper", "q" * 64)

        def test_prints_nothing_secret():
            print("fine")

        def test_fails_showing_a_pepper_in_its_assertion():
            secrecy_sweep.SWEEP.remember_pepper("r" * 64)
            assert "r" * 64 == "no pepper"
        """
    )
    result = pytester.runpytest_subprocess("-p", "tests.secrecy_sweep", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1, errors=2)  # a leak is an error at the teardown of the test that leaked
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_prints_a_pepper*", "*secrecy sweep: a pepper reached*"])
    result.stdout.fnmatch_lines(["*a pepper reached the call failure report in *test_fails_showing_a_pepper*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
