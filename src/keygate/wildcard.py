"""``*`` patterns, as API ids, stages and routes are written: every other character stands for itself."""

import functools
import re


@functools.lru_cache(maxsize=1024)  # asked on every request, of the few patterns a deployment has
def compile_wildcard(pattern: str, any_run: str = ".*") -> re.Pattern:
    """The pattern as a regular expression (for fullmatch), ``*`` becoming ``any_run``, whose "." (if any)
    matches a line break too: any run of characters."""
    return re.compile(any_run.join(re.escape(part) for part in pattern.split("*")), re.DOTALL)
