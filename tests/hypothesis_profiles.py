"""Hypothesis profiles: "ci" (the default) is bounded and deterministic, "fuzz" (HYPOTHESIS_PROFILE=fuzz) a long
random run. A test that costs more than a few milliseconds an example asks for a share of the budget
(``budget``), so the fuzz profile scales it too."""

import os

from hypothesis import HealthCheck, settings

CI_EXAMPLES = 200  # the whole of tests/test_properties.py in about 20 s on two busy cores
FUZZ_EXAMPLES = 20_000

# derandomize: the examples are a function of each test's code, so a run in CI cannot fail on an example
# that the run before did not meet; a fixed seed would do the same, but for every test at once and
# through a command-line option. New ground is the fuzz profile's job: random, and it keeps what it found
# failing in .hypothesis/ to try first next time. No deadline: the machine is shared, a slow example is
# not a bug.
settings.register_profile(
    "ci",
    max_examples=CI_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    max_examples=FUZZ_EXAMPLES,
    derandomize=False,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def load() -> str:
    """Load the profile HYPOTHESIS_PROFILE names ("ci" without it) and return its name."""
    name = os.environ.get("HYPOTHESIS_PROFILE") or "ci"
    settings.load_profile(name)
    return name


def budget(share: float, *, fixtures: bool = False) -> settings:
    """Settings for a test that runs ``share`` of the profile's examples (at least 5); ``fixtures``: the
    test takes function-scoped fixtures, set up once for all its examples, which it accounts for."""
    checks = list(settings.default.suppress_health_check)
    if fixtures:
        checks.append(HealthCheck.function_scoped_fixture)
    return settings(max_examples=max(5, round(settings.default.max_examples * share)), suppress_health_check=checks)
